#!/bin/sh
# tests/fuzz/run.sh BUILD_DIR SECONDS - run every libFuzzer target BUILD_DIR/fuzz_* for SECONDS
# each, on a scratch copy of its seed corpus tests/fuzz/corpus/<name>/ (the committed corpus
# never grows), one per CPU at a time. One line per target; exits non-zero if any target
# crashed, leaked or failed.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS" >&2
	exit 2
fi
build=$1
seconds=$2
case $seconds in
'' | *[!0-9]*)
	echo "$0: SECONDS must be a whole number" >&2
	exit 2
	;;
esac
corpora=$(cd "$(dirname "$0")" && pwd)/corpus
scratch=$(mktemp -d "${TMPDIR:-/tmp}/drover-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT INT TERM

# One target: its verdict line goes to $work/result.
run_one() { # target
	target=$1
	name=$(basename "$target")
	work=$scratch/$name
	mkdir -p "$work/corpus" "$work/artifacts"
	if [ -d "$corpora/$name" ]; then
		cp -R "$corpora/$name/." "$work/corpus/"
	fi
	# A crash leaves its input in artifacts/; keep the log and the input for the reader.
	if "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
	    "$work/corpus" >"$work/log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
		echo "ok   $name: ${runs:-?} runs in ${seconds}s" >"$work/result"
	else
		keep=$build/fuzz-failures/$name
		mkdir -p "$keep"
		cp "$work/log" "$keep/log"
		cp -R "$work/artifacts/." "$keep/" 2>/dev/null
		why=$(grep -m 1 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|Timeout|out-of-memory' \
		    "$work/log")
		echo "FAIL $name: ${why:-exit status non-zero} (log and inputs in $keep)" >"$work/result"
	fi
}

# Targets run as many at a time as there are CPUs: each is one busy thread, and CI's time
# budget is the sum of the batches, not of the targets.
parallel=$(nproc 2>/dev/null || echo 1)
status=0
found=0
batch=""
flush() {
	wait
	for name in $batch; do
		cat "$scratch/$name/result"
		case $(cat "$scratch/$name/result") in FAIL*) status=1 ;; esac
	done
	batch=""
}
n=0
for target in "$build"/fuzz_*; do
	[ -f "$target" ] && [ -x "$target" ] || continue
	found=1
	run_one "$target" &
	batch="$batch $(basename "$target")"
	n=$((n + 1))
	if [ $((n % parallel)) -eq 0 ]; then
		flush
	fi
done
flush

if [ $found -eq 0 ]; then
	echo "$0: no fuzz_* executables in $build (configure with -DDROVER_FUZZ=ON)" >&2
	exit 2
fi
exit $status
