#!/usr/bin/env bash
# bench/million.sh - a million messages queued for a destination that defers them: Drover's
# resident memory per queued message, and how long a restart takes until the whole queue is
# scheduled again.
#
#   bench/million.sh [MESSAGES] [SIZE] [SESSIONS]          (defaults: 1000000 1024 32)
#   DEFER=refuse bench/million.sh        the destination refuses connections instead
#   COLD=1 bench/million.sh              then restart again with the spool's file out of the
#                                        page cache (synced, then dropped with
#                                        posix_fadvise(DONTNEED): `dd iflag=nocache count=0`)
#
# Targets (issue 3): at most 300 bytes per queued message beyond the spool's pages, and the
# whole queue scheduled again at most 20 s after a restart.
#
# Method:
#  - Drover: `drover serve` on a free loopback port, a fresh spool under /var/tmp (max_size
#    sized for the run), every message to rcpt@deferred.example, routed to the destination
#    (route "deferred.example"), delivery { retry = { "1h" } } so that a deferred message
#    just waits.
#  - The destination (DEFER=sink, the default): bench/tools/sink -D -d 0 on 127.0.0.1:2701,
#    which answers every RCPT with 451 4.7.1: each message is tried once, deferred, and
#    rescheduled an hour later (the retry path: attempt, outcome written to the spool, next
#    attempt time). DEFER=refuse: a port where nothing listens; the destination is soon held
#    back as dead and the messages wait without an attempt (the cheapest case).
#  - Load: Postfix's smtp-source, SESSIONS sessions, one message per connection, SIZE-octet
#    messages (1 KB by default rather than 4 KB: a million 4 KB messages take 4+ GB of spool
#    and a quarter of an hour longer to inject; the queue's memory does not depend on it).
#  - Memory: RssAnon of the daemon (anonymous memory: the heap, not the spool's mmap'ed
#    pages, which are RssFile) (1) after start with an empty spool, (2) after the load, once
#    every message has been deferred (DEFER=sink) and the daemon is idle, (3) after the
#    restart, once the queue is loaded. Per message = (2 - 1) / MESSAGES and (3 - 1) /
#    MESSAGES; (3) is the cleaner figure (no reception buffers or allocator slack from the
#    load).
#  - Restart: SIGTERM, then `drover serve` again; the time from exec until the daemon logs
#    "delivery: N queue items from the spool in X s" (every message read back from the
#    spool and in the scheduled queue with its next attempt time; the time is the log
#    line's own stamp), and until it listens. The spool's recovery pass runs before that
#    and is included. With COLD=1, once more with the spool's file out of the page cache.
#
# Postfix is not measured here: it keeps deferred mail on disk and its queue manager's memory
# is bounded by qmgr_message_active_limit (20,000 messages), so there is no per-message
# figure to compare; and injecting a million messages into it takes ~20 minutes.
# Needs smtp-source (postfix package), libevent-dev, a built drover (DROVER_BIN, default
# build/release/drover), about 6 GB free under /var/tmp for the defaults.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(dirname "$here")
drover_bin=${DROVER_BIN:-$repo/build/release/drover}
tools=$repo/build/bench
n=${1:-1000000}
size=${2:-1024}
sessions=${3:-32}
defer=${DEFER:-sink}
cold=${COLD:-0}
dest_port=2701
inject_deadline=${INJECT_DEADLINE:-3600}
defer_deadline=${DEFER_DEADLINE:-1800}
restart_deadline=${RESTART_DEADLINE:-600}
py=/usr/bin/python3

die() { echo "million.sh: $*" >&2; exit 1; }
[ -x "$drover_bin" ] || die "no drover at $drover_bin (make release, or set DROVER_BIN)"
command -v smtp-source >/dev/null || die "no smtp-source (apt-get install postfix)"
case $defer in sink | refuse) ;; *) die "DEFER=$defer: sink or refuse" ;; esac
make -s -C "$here/tools" OUT="$tools" >/dev/null || die "cannot build bench/tools"
ss -Hltn "sport = :$dest_port" | grep -q . && die "port $dest_port is taken"

# Spool room: LMDB takes about a 4 KB page per small message plus its body; the map is
# sparse, so twice that costs nothing.
need_mb=$(((n * (size + 4096)) / 1048576 + 256))
spool_mb=$((need_mb * 2))
free_mb=$(df -Pm /var/tmp | awk 'NR == 2 { print $4 }')
[ "$free_mb" -gt $((need_mb + 1024)) ] || die "not enough room under /var/tmp ($free_mb MB, need $need_mb)"

work=$(mktemp -d /var/tmp/drover-million.XXXXXX)
sink_pid='' drover_pid=''
cleanup() {
	local p
	for p in "$drover_pid" "$sink_pid"; do
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

since() { echo "$(now) $1" | awk '{ printf "%.2f", $1 - $2 }'; }
rss() { # pid field (RssAnon, RssFile, VmRSS) -> kB
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
sink_deferred() {
	kill -USR1 "$sink_pid"
	sleep 0.2
	sed -n 's/.*"rcpt_deferred": \([0-9]*\).*/\1/p' "$work/sink-stats.json" 2>/dev/null
}

port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conf="$work/drover.conf"
cat >"$conf" <<CONF
hostname = "drover.bench"
event_log = "$work/events.jsonl"
relay_networks = { "127.0.0.0/8" }
spool {
  directory = "$work/spool"
  max_size = "${spool_mb}M"
}
listener "smtp" {
  address = "127.0.0.1:$port"
}
delivery {
  retry = { "1h" }
}
route "deferred.example" {
  hosts = { "127.0.0.1:$dest_port" }
}
CONF
"$drover_bin" check-config "$conf" >/dev/null || die "bench config refused"

start_drover() { # -> sets drover_pid, t_exec; waits until it listens
	: >"$work/drover.stderr"
	t_exec=$(now)
	"$drover_bin" serve --config "$conf" 2>>"$work/drover.stderr" &
	drover_pid=$!
	for _ in $(seq 1 $((restart_deadline * 20))); do
		listening "$port" && return 0
		kill -0 "$drover_pid" 2>/dev/null || break
		sleep 0.05
	done
	tail "$work/drover.stderr" >&2
	die "drover did not start"
}
stop_drover() {
	kill -TERM "$drover_pid"
	wait "$drover_pid" || die "drover exited $? on SIGTERM"
	drover_pid=
}
# The queue's load line: "delivery: N queue items from the spool in X s".
loaded_line() { sed -n 's/.*delivery: \([0-9]*\) queue items from the spool in \([0-9.]*\) s.*/\1 \2/p' "$work/drover.stderr" | tail -1; }
settle() { # pid: waits until RssAnon stops growing (idle daemon), at most 30 s
	local a b
	a=$(rss "$1" RssAnon)
	for _ in $(seq 1 30); do
		sleep 1
		b=$(rss "$1" RssAnon)
		[ "$b" -le "$a" ] && break
		a=$b
	done
}

echo "million benchmark: $n messages of $size octets, $sessions sessions, destination: $defer;" \
	"$(nproc) CPUs, $(uname -r)"

if [ "$defer" = sink ]; then
	"$tools/sink" -l "127.0.0.1:$dest_port" -D -d 0 -S "$work/sink-stats.json" \
		>"$work/sink.out" 2>"$work/sink.err" &
	sink_pid=$!
	for _ in $(seq 1 250); do grep -q ready "$work/sink.out" 2>/dev/null && break; sleep 0.02; done
	grep -q ready "$work/sink.out" || die "the sink did not start"
fi

# ---- 1. empty
start_drover
sleep 2
base_anon=$(rss "$drover_pid" RssAnon)
echo "empty:     RssAnon=${base_anon} kB RssFile=$(rss "$drover_pid" RssFile) kB"

# ---- 2. load
t0=$(now)
timeout "$inject_deadline" smtp-source -s "$sessions" -m "$n" -l "$size" -f sender@senders.example \
	-t rcpt@deferred.example "127.0.0.1:$port" || die "smtp-source failed or took over ${inject_deadline}s"
inject_s=$(since "$t0")
echo "injected:  $n messages in ${inject_s} s ($(echo "$n $inject_s" | awk '{ printf "%.0f", $1 / $2 }')/s)"
if [ "$defer" = sink ]; then
	t1=$(now)
	for _ in $(seq 1 $((defer_deadline * 2))); do
		d=$(sink_deferred)
		[ "${d:-0}" -ge "$n" ] && break
		sleep 0.3
	done
	[ "${d:-0}" -ge "$n" ] || die "only ${d:-0} of $n messages deferred within ${defer_deadline}s"
	echo "deferred:  all $n tried once and deferred, $(since "$t0") s after the load began" \
		"($(since "$t1") s after it ended)"
else
	sleep 10
fi
settle "$drover_pid"
queued=$("$drover_bin" queue list --config "$conf" | tail -1 | awk '{ print $1 }')
[ "$queued" -eq "$n" ] || die "$queued of $n messages in the spool"
load_anon=$(rss "$drover_pid" RssAnon)
echo "loaded:    RssAnon=${load_anon} kB RssFile=$(rss "$drover_pid" RssFile) kB," \
	"$(du -sm "$work/spool" | cut -f1) MB of spool;" \
	"$(echo "$load_anon $base_anon $n" | awk '{ printf "%.0f", ($1 - $2) * 1024 / $3 }') bytes per queued message"

# ---- 3. restart
t_stop=$(now)
stop_drover
echo "stopped:   in $(since "$t_stop") s"
restart() {
	start_drover
	listen_s=$(echo "$(now) $t_exec" | awk '{ printf "%.2f", $1 - $2 }')
	line=$(loaded_line)
	[ -n "$line" ] || { tail "$work/drover.stderr" >&2; die "no \"delivery: N queue items from the spool in X s\" line in the log"; }
	# The line's own time stamp (the log's first field, RFC 3339 UTC) minus the exec time.
	stamp=$(grep 'queue items from the spool in' "$work/drover.stderr" | tail -1 | cut -d' ' -f1)
	sched_s=$(echo "$(date -d "$stamp" +%s.%N) $t_exec" | awk '{ printf "%.2f", $1 - $2 }')
	settle "$drover_pid"
	again_anon=$(rss "$drover_pid" RssAnon)
	echo "restart$1: $(echo "$line" | awk '{ print $1 }') queue items scheduled," \
		"${sched_s} s after exec (the engine's loading: $(echo "$line" | awk '{ print $2 }') s)," \
		"listening ${listen_s} s after exec;" \
		"RssAnon=${again_anon} kB RssFile=$(rss "$drover_pid" RssFile) kB," \
		"$(echo "$again_anon $base_anon $n" | awk '{ printf "%.0f", ($1 - $2) * 1024 / $3 }') bytes per queued message"
}
restart "    (warm page cache)"
if [ "$cold" = 1 ]; then
	stop_drover
	for f in "$work"/spool/*.mdb; do
		sync "$f"
		dd if="$f" iflag=nocache count=0 status=none
	done
	command -v fincore >/dev/null && echo "cold:      $(fincore -n -o RES "$work/spool/data.mdb" | tr -d ' ') of the spool's data.mdb still in the page cache"
	restart "    (cold page cache)"
fi
