#!/bin/sh
# bench/classify.sh - what the bounce classifier costs: classifications per second of real
# replies against etc/bounce-rules.conf, uncached and cached, on one thread and on all CPUs.
#
#   bench/classify.sh [SECONDS] [THREADS]       (defaults: 2, the number of CPUs)
#
# The program, bench/classify.c, is built here with cc -O2 against the static libraries of a
# CMake build (BUILD, default build/release: drover_classify, drover_smtp, drover_core,
# refreshed with cmake --build), or straight from the sources in src/ when that build is not
# there or does not build (or DROVER_BENCH_FROM_SOURCES=1). Needs cc, pkg-config and the -dev
# packages of the build (PCRE2, libidn2, libevent, jansson). No root, no network.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build/release}
seconds=${1:-2}
threads=${2:-$(nproc)}
pc="libpcre2-8 libidn2 libevent_core libevent_extra libevent_pthreads jansson"
work=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench-classify.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# shellcheck disable=SC2086 # $pc is a list of package names
cflags="-std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I$repo/src $(pkg-config --cflags $pc)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pc) -lpthread"

from_libs() {
	[ "${DROVER_BENCH_FROM_SOURCES:-0}" != 1 ] || return 1
	[ -f "$build/CMakeCache.txt" ] || return 1
	cmake --build "$build" --target drover_classify drover_smtp drover_core \
	    >"$work/build.log" 2>&1 || return 1
	# shellcheck disable=SC2086
	cc $cflags "$here/classify.c" "$build/libdrover_classify.a" "$build/libdrover_smtp.a" \
	    "$build/libdrover_core.a" $libs -o "$work/classify"
	echo "built against the static libraries of $build"
}

from_sources() {
	# shellcheck disable=SC2086
	cc $cflags "$here/classify.c" "$repo"/src/classify/*.c "$repo"/src/smtp/*.c \
	    "$repo"/src/core/*.c $libs -o "$work/classify"
	echo "built from the sources in $repo/src (cc -O2)"
}

from_libs || from_sources
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "PCRE2: $(pkg-config --modversion libpcre2-8)"
echo
"$work/classify" "$repo/etc/bounce-rules.conf" "$seconds" "$threads"
