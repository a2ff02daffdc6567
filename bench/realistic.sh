#!/usr/bin/env bash
# bench/realistic.sh - end-to-end relay under a realistic receiver, Drover and Postfix side by
# side: the receiver (bench/tools/sink.c) answers 451 to 5% of recipients on their first
# attempt and 550 to 2% always, waits 50 ms before every reply, and is reached as 1,000
# recipient domains. Checks that every acknowledged recipient ends delivered (exactly once),
# bounced (with a DSN back to the sender) or queued for a retry: none lost or duplicated.
#
#   bench/realistic.sh [MESSAGES] [SESSIONS] [SIZE] [RUNS]     (defaults: 10000 32 4096 1)
#   MODES="routes smarthost mx" bench/realistic.sh              (default MODES="routes mx")
#   MTAS=postfix bench/realistic.sh                             (default MTAS="postfix drover")
#
# Load: bench/tools/loadgen (C, libevent): MESSAGES messages of SIZE octets over SESSIONS
# sessions, one message per connection (as smtp-source), each to 1-3 recipients with local
# parts unique in the run, at domains d0001.example ... d1000.example; sender
# sender@senders.example. It writes what each 250 acknowledged.
#
# The receiver: one sink listening on 127.0.0.1:2700 (senders.example: DSNs, always accepted)
# and on one loopback address per domain, 127.1.X.Y:2700, so that each domain is a next hop
# of its own for both MTAs (Postfix's queue manager limits concurrency per next hop, Drover
# per recipient domain).
#
# Modes (how the MTAs find the receiver):
#   routes     both MTAs: a static route per domain to its own address (Drover: route
#              "dNNNN.example" { hosts = { "127.1.X.Y:2700" } }; Postfix: transport_maps
#              dNNNN.example smtp:[127.1.X.Y]:2700), and senders.example to 127.0.0.1:2700.
#   smarthost  both MTAs: everything to 127.0.0.1:2700 (Drover: delivery.smarthost; Postfix:
#              transport_maps to [127.0.0.1]:2700, i.e. one next hop, as with relayhost).
#   mx         Drover only: real MX lookups (dNNNN.example MX mx.dNNNN.example, A 127.1.X.Y)
#              answered by tests/integration/dnsserver.py on loopback, delivery.port 2700.
#              Postfix would need its resolver pointed at that server (resolv.conf, port 53):
#              not done, since the machine's resolver is not ours to change.
#
# Both MTAs keep their own defaults for concurrency and connection reuse (Postfix: 100 smtp
# processes, 20 per next hop; Drover: 20 per domain, 512 in all). Postfix is the peer of
# shared/bench/peer-relay.sh (port 2526): this script sets transport_maps for the bench's
# domains only and restores the previous value on exit. Drover: `drover serve` on a free
# port, a fresh spool per run, delivery { retry = { "5s" } }.
#
# Each run: sink up; load; then
#   end to end = acknowledged messages / time until every acknowledged recipient has had an
#                answer from the sink (accepted, refused or deferred: every message tried
#                once), measured from the start of the load;
#   final      = time until every recipient is delivered or bounced with its DSN received
#                (Postfix: `postqueue -i` on the run's deferred messages first, since its
#                retry waits 5 minutes or more; Drover retries after 5 s): informative, not
#                a speed;
#   verdict    = delivered / bounced / queued / lost / duplicated per recipient, from the
#                sink's record and the MTA's queue (tally.py). A loss or a duplicate fails.
# Needs root (Postfix), python3-dnslib (mx), libevent-dev (the tools), a built drover
# (DROVER_BIN, default build/release/drover).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(dirname "$here")
shared=${DROVER_SHARED:-$(cd "$repo/../shared" 2>/dev/null && pwd || echo "$repo/../shared")}
drover_bin=${DROVER_BIN:-$repo/build/release/drover}
tools=$repo/build/bench
n=${1:-10000}
sessions=${2:-32}
size=${3:-4096}
runs=${4:-1}
modes=${MODES:-routes mx}
mtas=${MTAS:-postfix drover}
domains=1000
sink_port=2700
delay_ms=${SINK_DELAY_MS:-50}
tempfail=${SINK_TEMPFAIL:-5}
permfail=${SINK_PERMFAIL:-2}
first_deadline=${FIRST_DEADLINE:-1800}
final_deadline=${FINAL_DEADLINE:-300}
py=/usr/bin/python3

die() { echo "realistic.sh: $*" >&2; exit 1; }
[[ " $mtas " != *" drover "* ]] || [ -x "$drover_bin" ] ||
	die "no drover at $drover_bin (make release, or set DROVER_BIN)"
[ -x "$shared/bench/peer-relay.sh" ] || die "no $shared/bench/peer-relay.sh (set DROVER_SHARED)"
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix is the peer)"
for m in $modes; do
	case $m in routes | smarthost | mx) ;; *) die "unknown mode $m (routes, smarthost, mx)" ;; esac
done
make -s -C "$here/tools" OUT="$tools" >/dev/null || die "cannot build bench/tools"
if [[ " $modes " == *" mx "* ]]; then
	$py -c 'import dnslib' 2>/dev/null || die "mx mode needs python3-dnslib"
fi
ss -Hltn "sport = :$sink_port" | grep -q . && die "port $sink_port is taken"

work=$(mktemp -d /var/tmp/drover-realistic.XXXXXX)
sink_pid='' drover_pid='' dns_pid='' pf_saved='' pf_touched=''
pf_transport=/etc/postfix/drover-realistic-transport
cleanup() {
	local p
	for p in "$drover_pid" "$sink_pid" "$dns_pid"; do
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$pf_touched" ]; then
		postconf -e "transport_maps = $pf_saved"
		rm -f "$pf_transport"
		postfix reload >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addr_of() { echo "127.1.$(($1 / 200)).$(($1 % 200 + 1))"; } # domain number -> its address
dom_of() { printf 'd%04d.example' "$1"; }

# ---- The receiver
sink_args=(-l "127.0.0.1:$sink_port" -d "$delay_ms" -t "$tempfail" -p "$permfail" -s 7
	-a senders.example)
for k in $(seq 1 $domains); do sink_args+=(-l "$(addr_of "$k"):$sink_port"); done
start_sink() { # record file
	rm -f "$1"
	"$tools/sink" "${sink_args[@]}" -o "$1" -S "$work/sink-stats.json" \
		>"$work/sink.out" 2>>"$work/sink.err" &
	sink_pid=$!
	for _ in $(seq 1 250); do grep -q ready "$work/sink.out" 2>/dev/null && return 0; sleep 0.02; done
	tail "$work/sink.err" >&2
	die "the sink did not start"
}
stop_sink() {
	kill -TERM "$sink_pid"
	wait "$sink_pid" || true
	sink_pid=
}

# ---- DNS for mx mode: every domain's MX on its own address, senders.example on 127.0.0.1
start_dns() {
	$py - "$domains" >"$work/zone.json" <<'PY'
import json, sys
n = int(sys.argv[1])
rec = {"senders.example": {"MX": [[10, "mx.senders.example"]]},
       "mx.senders.example": {"A": ["127.0.0.1"]}}
for k in range(1, n + 1):
    d = "d%04d.example" % k
    rec[d] = {"MX": [[10, "mx." + d]]}
    rec["mx." + d] = {"A": ["127.1.%d.%d" % (k // 200, k % 200 + 1)]}
print(json.dumps({"ttl": 3600, "zones": ["example"], "records": rec}))
PY
	$py "$repo/tests/integration/dnsserver.py" "$work/zone.json" >"$work/dns.out" 2>"$work/dns.err" &
	dns_pid=$!
	for _ in $(seq 1 250); do
		dns_port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$work/dns.out")
		[ -n "$dns_port" ] && return 0
		sleep 0.02
	done
	tail "$work/dns.err" >&2
	die "dnsserver.py did not start"
}

# ---- Drover
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conf="$work/drover.conf"
write_conf() { # mode
	base_conf >"$conf"
	case $1 in
	routes)
		printf 'delivery {\n  retry = { "5s" }\n}\n' >>"$conf"
		printf 'route "senders.example" {\n  hosts = { "127.0.0.1:%s" }\n}\n' "$sink_port" >>"$conf"
		for k in $(seq 1 $domains); do
			printf 'route "%s" {\n  hosts = { "%s:%s" }\n}\n' "$(dom_of "$k")" "$(addr_of "$k")" \
				"$sink_port"
		done >>"$conf"
		;;
	smarthost)
		printf 'delivery {\n  retry = { "5s" }\n  smarthost = { "127.0.0.1:%s" }\n}\n' \
			"$sink_port" >>"$conf"
		;;
	mx)
		printf 'delivery {\n  retry = { "5s" }\n  port = %s\n  dns_forwarders = { "127.0.0.1@%s" }\n}\n' \
			"$sink_port" "$dns_port" >>"$conf"
		;;
	esac
	"$drover_bin" check-config "$conf" >/dev/null || die "bench config refused ($1)"
}
start_drover() {
	rm -rf "$work/spool" "$work/events.jsonl"
	"$drover_bin" serve --config "$conf" 2>>"$work/drover.stderr" &
	drover_pid=$!
	wait_listening "$port" "$drover_pid" || { tail "$work/drover.stderr" >&2; die "drover did not start"; }
}
stop_drover() {
	kill -TERM "$drover_pid"
	wait "$drover_pid" || die "drover exited $? on SIGTERM"
	drover_pid=
}

# ---- Postfix: the peer, with transport_maps for the bench's domains
"$shared/bench/peer-relay.sh" postfix-setup >/dev/null
wait_listening 2526 || die "Postfix does not listen on 127.0.0.1:2526"
pf_saved=$(postconf -h transport_maps)
postfix_mode() { # mode
	local k
	{
		echo "senders.example smtp:[127.0.0.1]:$sink_port"
		for k in $(seq 1 $domains); do
			if [ "$1" = routes ]; then
				echo "$(dom_of "$k") smtp:[$(addr_of "$k")]:$sink_port"
			else
				echo "$(dom_of "$k") smtp:[127.0.0.1]:$sink_port"
			fi
		done
	} >"$pf_transport"
	pf_touched=1
	postconf -e "transport_maps = texthash:$pf_transport"
	postfix reload >/dev/null 2>&1
	sleep 1
}
# The queue ids of a run's messages in Postfix's queue (their recipients carry the run's tag).
postfix_ids() { # tag [queue name]
	postqueue -j | $py -c '
import json, sys
tag, qname = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    o = json.loads(line)
    if (not qname or o.get("queue_name") == qname) and \
            any(tag in r.get("address", "") for r in o.get("recipients", [])):
        print(o["queue_id"])' "$1" "${2:-}"
}
# Retries a run's deferred messages now (only them: other mail in the peer's queue stays).
postfix_flush() { # tag
	postfix_ids "$1" deferred | xargs -r -n 1 -P 4 postqueue -i >/dev/null 2>&1 || true
}
# Removes what a run left in Postfix's queue.
postfix_purge() { # tag
	postfix_ids "$1" | postsuper -d - >/dev/null 2>&1 || true
}

# ---- One run: mta (drover|postfix), mode, run number. Prints one line.
declare -A results
run_one() {
	local mta=$1 mode=$2 i=$3 tag t0 t1 tf tfin lg acked acc e2e fin verdict target
	tag="r$i${mode:0:2}$$" # the same recipients for both MTAs (Postfix's leftovers are purged)
	start_sink "$work/record.tsv"
	if [ "$mta" = drover ]; then
		start_drover
		target="127.0.0.1:$port"
	else
		target="127.0.0.1:2526"
	fi
	t0=$(now)
	lg=$("$tools/loadgen" -c "$target" -n "$n" -s "$sessions" -l "$size" -D "$domains" \
		-T "$tag" -o "$work/acks.tsv" -q -w "$first_deadline") || true
	t1=$(now)
	acked=$(echo "$lg" | sed -n 's/.*acked=\([0-9]*\).*/\1/p')
	[ "${acked:-0}" -gt 0 ] || die "$mta/$mode: nothing acknowledged: $lg"
	tf=$($py "$here/tools/tally.py" wait --acks "$work/acks.tsv" --record "$work/record.tsv" \
		--until first --deadline "$first_deadline") || die "$mta/$mode: not every message was tried"
	# Postfix: its deferred messages are flushed every 5 s (one may still be on its way
	# from the active to the deferred queue at the first flush).
	fin="over_${final_deadline}s"
	for _ in $(seq 1 $(((final_deadline + 4) / 5))); do
		[ "$mta" = postfix ] && postfix_flush "$tag"
		if tfin=$($py "$here/tools/tally.py" wait --acks "$work/acks.tsv" \
			--record "$work/record.tsv" --until final --deadline 5 2>/dev/null); then
			fin=$(echo "$tfin $t0" | awk '{ printf "%.1f", $1 - $2 }')
			break
		fi
	done
	if [ "$mta" = drover ]; then
		"$drover_bin" queue list --config "$conf" --json >"$work/queue.json"
	else
		postqueue -j | grep -F "$tag" >"$work/queue.json" || true
	fi
	verdict=$($py "$here/tools/tally.py" verdict --acks "$work/acks.tsv" \
		--record "$work/record.tsv" --queue "$work/queue.json") || {
		echo "$verdict"
		die "$mta/$mode run $i: lost or duplicated recipients"
	}
	if [ "$mta" = drover ]; then stop_drover; else postfix_purge "$tag"; fi
	stop_sink
	acc=$(echo "$acked $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
	e2e=$(echo "$acked $t0 $tf" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
	results[$mta/$mode]="${results[$mta/$mode]:-} $e2e"
	printf 'run %s %-17s accepted_per_s=%s end_to_end_per_s=%s all_final_s=%s %s sink_connections=%s\n' \
		"$i" "$mta/$mode" "$acc" "$e2e" "$fin" "$verdict" \
		"$(sed -n 's/.*"connections": \([0-9]*\).*/\1/p' "$work/sink-stats.json")"
}

echo "realistic relay benchmark: $n messages of $size octets, $sessions sessions, $domains" \
	"domains, sink ${delay_ms} ms/reply, ${tempfail}% 451 once, ${permfail}% 550;" \
	"modes: $modes; $runs run(s) each; $(nproc) CPUs, $(uname -r)"
[ "$(postqueue -j | wc -l)" -eq 0 ] || echo "warning: Postfix's queue is not empty" >&2
[[ " $modes " == *" mx "* ]] && start_dns
for i in $(seq 1 "$runs"); do
	for mode in $modes; do
		if [ "$mode" != mx ] && [[ " $mtas " == *" postfix "* ]]; then
			postfix_mode "$mode"
			run_one postfix "$mode" "$i"
		fi
		if [[ " $mtas " == *" drover "* ]]; then
			write_conf "$mode"
			run_one drover "$mode" "$i"
		fi
	done
done

for mode in $modes; do
	dm='' pm=''
	if [ -n "${results[postfix/$mode]:-}" ]; then
		pm=$(median ${results[postfix/$mode]})
		echo "postfix $mode median end_to_end_per_s=$pm (runs:${results[postfix/$mode]})"
	fi
	if [ -n "${results[drover/$mode]:-}" ]; then
		dm=$(median ${results[drover/$mode]})
		echo "drover  $mode median end_to_end_per_s=$dm (runs:${results[drover/$mode]})"
	fi
	if [ -n "$dm" ] && [ -n "$pm" ]; then
		echo "$dm $pm" | awk -v m="$mode" '{ printf "%s ratio drover/postfix=%.2f\n", m, $1 / $2 }'
	fi
done
