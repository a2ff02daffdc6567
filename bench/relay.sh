#!/usr/bin/env bash
# bench/relay.sh - end-to-end relay throughput, Drover and Postfix side by side: smtp-source
# into the MTA, which relays every message to one smtp-sink on loopback. Counts a message
# when the sink has it.
#
#   bench/relay.sh [MESSAGES] [SESSIONS] [SIZE] [RUNS]        (defaults: 20000 32 4096 3)
#
# Both MTAs commit each message durably before their 250 (Drover: LMDB group commit with
# fsync; Postfix: its queue file, fsynced) and relay it to 127.0.0.1:2600, where
# shared/bench/peer-relay.sh runs smtp-sink for each run. Postfix is the peer of
# `peer-relay.sh postfix-setup` (port 2526, relayhost [127.0.0.1]:2600); Drover runs on a
# free port with `delivery { smarthost = { "127.0.0.1:2600" } }` and a fresh spool per run.
# Runs alternate; compare ratios, not absolute figures (the machine is shared and noisy).
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

die() { echo "relay.sh: $*" >&2; exit 1; }
[ -x "$drover_bin" ] || die "no drover at $drover_bin (make release, or set DROVER_BIN)"
[ -x "$shared/bench/peer-relay.sh" ] || die "no $shared/bench/peer-relay.sh (set DROVER_SHARED)"
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix is the peer)"

work=$(mktemp -d /var/tmp/drover-relay.XXXXXX)
drover_pid=
cleanup() {
	if [ -n "$drover_pid" ]; then
		kill -TERM "$drover_pid" 2>/dev/null || true
		wait "$drover_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


"$shared/bench/peer-relay.sh" postfix-setup >/dev/null
wait_listening 2526 || die "Postfix does not listen on 127.0.0.1:2526"

port=$(free_port)
conf="$work/drover.conf"
{
	base_conf
	printf 'delivery {\n  smarthost = { "127.0.0.1:2600" }\n}\n'
} >"$conf"
"$drover_bin" check-config "$conf" >/dev/null || die "bench config refused"

# One run through peer-relay.sh: sets $acc and $e2e; fails unless the sink got them all.
run() { # port
	local out
	out=$("$shared/bench/peer-relay.sh" run "$1" "$n" "$sessions" "$size")
	echo "$out" | grep -q "delivered=$n\$" || die "not all delivered: $out"
	acc=$(echo "$out" | sed -n 's/.*accepted_per_s=\([0-9]*\).*/\1/p')
	e2e=$(echo "$out" | sed -n 's/.*end_to_end_per_s=\([0-9]*\).*/\1/p')
}

echo "relay benchmark: $n messages of $size octets, $sessions sessions, $runs runs each," \
	"$(nproc) CPUs, $(uname -r)"
pf=() dr=()
for i in $(seq 1 "$runs"); do
	run 2526; pf+=("$e2e"); echo "run $i postfix accepted_per_s=$acc end_to_end_per_s=$e2e"
	start_drover
	run "$port"; dr+=("$e2e"); echo "run $i drover  accepted_per_s=$acc end_to_end_per_s=$e2e"
	stop_drover
done
pm=$(median "${pf[@]}")
dm=$(median "${dr[@]}")
echo "postfix median end_to_end_per_s=$pm (runs: ${pf[*]})"
echo "drover  median end_to_end_per_s=$dm (runs: ${dr[*]})"
echo "$dm $pm" | awk '{ printf "ratio drover/postfix=%.2f\n", $1 / $2 }'
