#!/usr/bin/env bash
# bench/inject.sh - HTTP injection (POST /api/v1/inject) against SMTP into the same Drover.
#
#   bench/inject.sh [RECIPIENTS] [SESSIONS] [RUNS]      (defaults: 5000 8 3)
#
# Each run starts `drover serve` with a fresh spool (no delivery: mail stays queued) and
# times, on the client's side (curl), one request of RECIPIENTS recipients:
#  - personal: each recipient has its own substitution ({{name}}), so each is a message;
#  - shared: the same content for all, so recipients share messages (smtp.max_recipients);
# then RECIPIENTS one-recipient messages of the same size through Postfix's smtp-source with
# SESSIONS parallel sessions (the injection uses 8 internal sessions; Postfix has no HTTP
# injection, so SMTP into Drover is the comparison). Every run checks that every recipient
# was queued (the answer's success_count, `drover queue list`) before its rate counts.
# Prints recipients/s per run and the medians. Needs smtp-source, curl, a built drover
# (DROVER_BIN, default build/release/drover).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(dirname "$here")
drover_bin=${DROVER_BIN:-$repo/build/release/drover}
n=${1:-5000}
sessions=${2:-8}
runs=${3:-3}

die() { echo "inject.sh: $*" >&2; exit 1; }
[ -x "$drover_bin" ] || die "no drover at $drover_bin (make release, or set DROVER_BIN)"
command -v smtp-source >/dev/null || die "no smtp-source (Debian: postfix)"
command -v curl >/dev/null || die "no curl"

bench_workdir inject

port=$(free_port)
cport=$(free_port)
conf="$work/drover.conf"
{
	base_conf
	cat <<CONF
control {
  address = "127.0.0.1:$cport"
}
CONF
} >"$conf"
"$drover_bin" check-config "$conf" >/dev/null || die "bench config refused"

# The request bodies: about the size of smtp-source's default message per recipient.
/usr/bin/python3 - "$n" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
text = "Hello {{name}},\n" + ("This is a benchmark line of text.\n" * 10)
for kind in ("personal", "shared"):
    rcpts = [{"email": f"user{i}@dest.example",
              **({"substitutions": {"name": f"User {i}"}} if kind == "personal" else {})}
             for i in range(n)]
    body = {"envelope_sender": "sender@bench.example", "recipients": rcpts,
            "substitutions": {"name": "friend"},
            "content": {"from": {"email": "news@bench.example", "name": "Bench"},
                        "subject": "Benchmark for {{name}}", "text_body": text}}
    with open(f"{work}/{kind}.json", "w") as f:
        json.dump(body, f)
PY

queued() { "$drover_bin" queue list --config "$conf" --json | /usr/bin/python3 -c \
	'import json,sys; print(sum(len(json.loads(l)["recipients"]) for l in sys.stdin if l.strip()))'; }

# One injection run; the rate in $rate.
run_inject() { # kind
	local t0 t1 ok count
	start_drover
	wait_listening "$cport" "$drover_pid" || die "control plane did not start"
	t0=$(now)
	ok=$(curl -sS --max-time 600 -H 'Content-Type: application/json' \
		--data-binary "@$work/$1.json" "http://127.0.0.1:$cport/api/v1/inject" |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["success_count"])')
	t1=$(now)
	count=$(queued)
	stop_drover
	[ "$ok" -eq "$n" ] || die "inject ($1): $ok of $n recipients queued"
	[ "$count" -eq "$n" ] || die "inject ($1): the queue holds $count of $n recipients"
	rate=$(echo "$n $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
}
run_smtp() {
	local t0 t1 count
	start_drover
	t0=$(now)
	smtp-source -s "$sessions" -m "$n" -l 512 -f sender@bench.example \
		-t rcpt@dest.example "127.0.0.1:$port" || die "smtp-source failed"
	t1=$(now)
	count=$(queued)
	stop_drover
	[ "$count" -eq "$n" ] || die "smtp: the queue holds $count of $n recipients"
	rate=$(echo "$n $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
}

echo "inject benchmark: $n recipients per request, smtp-source with $sessions sessions," \
	"$runs runs, $(nproc) CPUs, $(uname -r)"
pe=() sh=() sm=()
for i in $(seq 1 "$runs"); do
	run_inject personal; pe+=("$rate"); echo "run $i inject personal recipients_per_s=$rate"
	run_inject shared; sh+=("$rate"); echo "run $i inject shared   recipients_per_s=$rate"
	run_smtp; sm+=("$rate"); echo "run $i smtp-source     recipients_per_s=$rate"
done
echo "inject personal median recipients_per_s=$(median "${pe[@]}") (runs: ${pe[*]})"
echo "inject shared   median recipients_per_s=$(median "${sh[@]}") (runs: ${sh[*]})"
echo "smtp-source     median recipients_per_s=$(median "${sm[@]}") (runs: ${sm[*]})"
