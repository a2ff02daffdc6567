#!/bin/sh
# bench/suppress.sh - the suppression list at a million addresses: how long an import takes,
# how large the list is on disk, how many lookups per second suppress_check() answers (hits
# and misses, one thread and every CPU), and what it costs in memory.
#
#   bench/suppress.sh [ADDRESSES] [SECONDS]        (defaults: 1000000 3)
#
# Method:
#  - ADDRESSES distinct addresses (userN.xxxx@domainM.example, 20,000 domains), shuffled, one
#    a line: bench/tools/suppress_bench gen.
#  - Import 1: `drover suppress import FILE` into an empty list (timed, with the peak RSS of
#    the process from /usr/bin/time). Uses the built drover if it has the suppress command,
#    else the same code through suppress_bench cli (suppress_cli()).
#  - Import 2: as many other addresses, interleaved with the first (every key falls between
#    two stored ones: the B-tree insert path, not the append path), into that list.
#  - Sweep: the first set again under another tenant, expiring in 1 s; then `sweep` (timed),
#    and once more with nothing left to remove (a scan of every entry).
#  - Lookups: suppress_bench lookup opens the list read-only (as a second process would) and
#    calls suppress_check(list, "tenant1", address) from 1 and from nproc threads for SECONDS
#    each: hits (random addresses of the file, all suppressed globally: 2 B-tree lookups,
#    tenant then global) and misses (the same addresses with another local part: 4 lookups,
#    the domain entries included). RSS of that process before and after.
# Needs cc, cmake, liblmdb-dev, libjansson-dev, libevent-dev, /usr/bin/time; about 400 MB
# free under TMPDIR (default /var/tmp). No root, no network.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build/release}
drover_bin=${DROVER_BIN:-$build/drover}
n=${1:-1000000}
seconds=${2:-3}
threads=$(nproc)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/drover-bench-suppress.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

die() {
	echo "bench/suppress.sh: $*" >&2
	exit 1
}

[ -f "$build/CMakeCache.txt" ] || die "no CMake build in $build (make release, or set BUILD)"
cmake --build "$build" --target drover_suppress drover_core >"$work/build.log" 2>&1 ||
	{ tail "$work/build.log" >&2; die "cannot build drover_suppress in $build"; }
make -s -C "$here/tools" OUT="$work" DROVER_BUILD="$build" suppress_bench >"$work/build.log" 2>&1 ||
	{ tail "$work/build.log" >&2; die "cannot build bench/tools/suppress_bench.c"; }
tool=$work/suppress_bench

# The importing program and its first argument ("suppress" or "cli"): /usr/bin/time runs it.
if [ -x "$drover_bin" ] && "$drover_bin" suppress help >/dev/null 2>&1; then
	imp=$drover_bin imp_arg=suppress
	via="$drover_bin suppress import"
else
	imp=$tool imp_arg=cli
	via="suppress_bench cli import (this drover has no suppress command yet)"
fi

echo "== $n addresses, $(nproc) CPUs, $(uname -r), list under $work"
"$tool" gen "$n" "$work/a.txt"
# Interleaved with the first set: a letter in front, cycling, so that consecutive keys of the
# second set fall between keys of the first.
awk '{ printf "%c%s\n", 97 + NR % 26, $0 }' "$work/a.txt" >"$work/b.txt"

echo "== import 1: $n addresses into an empty list ($via)"
/usr/bin/time -f "   process: %e s elapsed, peak RSS %M KB" \
	"$imp" "$imp_arg" import "$work/a.txt" --dir "$work/list" | sed 's/^/   /'
echo "   data.mdb: $(du -m "$work/list/data.mdb" | cut -f1) MB"

echo "== import 2: $n more, interleaved with the first"
/usr/bin/time -f "   process: %e s elapsed, peak RSS %M KB" \
	"$imp" "$imp_arg" import "$work/b.txt" --dir "$work/list" | sed 's/^/   /'
echo "   data.mdb: $(du -m "$work/list/data.mdb" | cut -f1) MB"
if command -v mdb_stat >/dev/null; then
	mdb_stat -s entries "$work/list" | sed -n 's/^ *\(Tree depth\|Leaf pages\|Entries\)/   \1/p'
fi

echo "== sweep: $n entries expired among $((2 * n)) that are not"
"$imp" "$imp_arg" import "$work/a.txt" --dir "$work/list" --tenant expiring --expires 1s >/dev/null
sleep 1
/usr/bin/time -f "   process: %e s elapsed" "$imp" "$imp_arg" sweep --dir "$work/list" | sed 's/^/   /'
/usr/bin/time -f "   again, nothing to remove: %e s elapsed" "$imp" "$imp_arg" sweep --dir "$work/list" >/dev/null

echo "== lookups, ${seconds} s each"
"$tool" lookup "$work/list" "$work/a.txt" "$seconds" 1 | sed 's/^/   /'
if [ "$threads" -gt 1 ]; then
	"$tool" lookup "$work/list" "$work/a.txt" "$seconds" "$threads" | grep -E '^(hits|misses)' |
		sed 's/^/   /'
fi
