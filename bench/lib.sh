# bench/lib.sh - helpers the benchmark scripts share; sourced, not run.

# True if something listens on 127.0.0.1:PORT (any local address, in fact).
listening() { ss -Hltn "sport = :$1" | grep -q .; }

# Waits up to 10 s for PORT to listen; gives up early if PID (optional) has exited.
wait_listening() { # port [pid]
	for _ in $(seq 1 500); do
		listening "$1" && return 0
		[ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 1
		sleep 0.02
	done
	return 1
}

now() { date +%s.%N; }

# A loopback port nobody uses right now.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

median() {
	printf '%s\n' "$@" | sort -n |
		awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# A scratch directory in $work, removed at exit after the drover of start_drover (if one
# runs) is stopped.
bench_workdir() { # name
	work=$(mktemp -d "/var/tmp/drover-$1.XXXXXX")
	drover_pid=
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}
bench_cleanup() {
	if [ -n "$drover_pid" ]; then
		kill -TERM "$drover_pid" 2>/dev/null || true
		wait "$drover_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}

# The configuration every benchmark's Drover starts from (its $work's spool and event log,
# one SMTP listener on $port, relaying for loopback); the caller appends its own sections.
base_conf() {
	cat <<CONF
hostname = "drover.bench"
event_log = "$work/events.jsonl"
relay_networks = { "127.0.0.0/8" }
spool {
  directory = "$work/spool"
}
listener "smtp" {
  address = "127.0.0.1:$port"
}
CONF
}

# A fresh spool, then `drover serve` on the caller's $conf and $port (with $work, $drover_bin
# and die set by the caller); sets drover_pid. stop_drover expects a clean exit 0.
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
