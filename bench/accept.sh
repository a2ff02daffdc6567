#!/usr/bin/env bash
# bench/accept.sh - how many messages per second Drover and Postfix accept, durably, measured
# on the same machine in the same run.
#
#   bench/accept.sh [MESSAGES] [SESSIONS] [SIZE] [RUNS]      (defaults: 20000 32 4096 3)
#
# Load: Postfix's smtp-source, SESSIONS parallel sessions, SIZE-octet messages, one message
# per connection (as shared/bench/peer-relay.sh does). The two servers take turns, RUNS times
# each, because this machine is noisy: compare the ratio, not the absolute figures.
#
# Accept only, fsync on both sides:
#  - Drover: `drover serve` on a free loopback port with a fresh spool (a temporary directory
#    on the same disk as Postfix's queue) for each run; its spool commits with fsync (group
#    commit) before every 250. threads = the default (one loop per CPU).
#  - Postfix: the peer of shared/bench/peer-relay.sh (postfix-setup), plus a second smtpd
#    service on 127.0.0.1:2528 that puts every message on hold (check_client_access
#    static:HOLD), so Postfix writes and fsyncs each queue file as usual but spends nothing on
#    delivery. Inflow control is off for that service (in_flow_delay = 0s: with nothing ever
#    delivered, Postfix would otherwise pause 1 s per message). The hold queue is emptied
#    (postsuper -d ALL hold) after each run.
# Every run checks that every message was accepted (Drover: `drover queue list`; Postfix: the
# hold queue) before its rate counts. Needs root (Postfix), smtp-source, a built drover
# (DROVER_BIN, default build/release/drover).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(dirname "$here")
shared=${DROVER_SHARED:-$(cd "$repo/../shared" 2>/dev/null && pwd || echo "$repo/../shared")}
drover_bin=${DROVER_BIN:-$repo/build/release/drover}
n=${1:-20000}
sessions=${2:-32}
size=${3:-4096}
runs=${4:-3}
hold_port=2528

die() { echo "accept.sh: $*" >&2; exit 1; }
[ -x "$drover_bin" ] || die "no drover at $drover_bin (make release, or set DROVER_BIN)"
[ -x "$shared/bench/peer-relay.sh" ] || die "no $shared/bench/peer-relay.sh (set DROVER_SHARED)"
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix is the peer)"

work=$(mktemp -d /var/tmp/drover-accept.XXXXXX)
drover_pid=
cleanup() {
	if [ -n "$drover_pid" ]; then
		kill -TERM "$drover_pid" 2>/dev/null || true
		wait "$drover_pid" 2>/dev/null || true
	fi
	postsuper -d ALL hold >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---- Postfix: the peer, plus the hold-everything smtpd on :2528
"$shared/bench/peer-relay.sh" postfix-setup >/dev/null
postconf -M -e "holdcleanup/unix=holdcleanup unix n - y - 0 cleanup -o in_flow_delay=0s"
postconf -M -e "127.0.0.1:$hold_port/inet=127.0.0.1:$hold_port inet n - y - - smtpd \
-o smtpd_client_restrictions=check_client_access,static:HOLD \
-o cleanup_service_name=holdcleanup -o in_flow_delay=0s -o syslog_name=postfix/hold"
postfix reload >/dev/null 2>&1 || postfix start >/dev/null 2>&1
wait_listening "$hold_port" || die "Postfix does not listen on 127.0.0.1:$hold_port"
postsuper -d ALL hold >/dev/null 2>&1 || true
held() { find /var/spool/postfix/hold -type f | wc -l; }

# ---- Drover: a fresh spool per run, on a free port
port=$(free_port)
conf="$work/drover.conf"
base_conf >"$conf"
"$drover_bin" check-config "$conf" >/dev/null || die "bench config refused"


# One run: prints the rate; fails unless all n messages were accepted.
load() { # port
	local t0 t1
	t0=$(now)
	smtp-source -s "$sessions" -m "$n" -l "$size" -f sender@bench.example \
		-t rcpt@dest.example "127.0.0.1:$1" || die "smtp-source failed against port $1"
	t1=$(now)
	echo "$n $t0 $t1" | awk '{ printf "%.0f\n", $1 / ($3 - $2) }'
}
# run_postfix / run_drover: one run each, result in $rate (not in a subshell, so that the
# EXIT trap knows the drover it must stop).
run_postfix() {
	local count
	rate=$(load "$hold_port")
	count=$(held)
	postsuper -d ALL hold >/dev/null 2>&1
	[ "$count" -eq "$n" ] || die "Postfix held $count of $n messages"
}
run_drover() {
	local count
	start_drover
	rate=$(load "$port")
	count=$("$drover_bin" queue list --config "$conf" --json | wc -l)
	stop_drover
	[ "$count" -eq "$n" ] || die "Drover queued $count of $n messages"
}

echo "accept benchmark: $n messages of $size octets, $sessions sessions, $runs runs each," \
	"$(nproc) CPUs, $(uname -r)"
# Warm-up (page cache, Postfix processes), not counted.
n_saved=$n; n=$((sessions * 20))
run_postfix; run_drover
n=$n_saved

pf=() dr=()
for i in $(seq 1 "$runs"); do
	run_postfix; pf+=("$rate"); echo "run $i postfix accepted_per_s=$rate"
	run_drover; dr+=("$rate"); echo "run $i drover  accepted_per_s=$rate"
done

pm=$(median "${pf[@]}")
dm=$(median "${dr[@]}")
echo "postfix median accepted_per_s=$pm (runs: ${pf[*]})"
echo "drover  median accepted_per_s=$dm (runs: ${dr[*]})"
echo "$dm $pm" | awk '{ printf "ratio drover/postfix=%.2f\n", $1 / $2 }'
