#!/bin/sh
# bench/dkim.sh - what DKIM costs: signatures (and verifications) per second of a 4 KB
# message, per core and on every core, for RSA 1024/2048/4096 and Ed25519, with OpenSSL's own
# figures for the bare public-key operations beside them.
#
#   bench/dkim.sh [SECONDS] [THREADS]       (defaults: 3, the number of CPUs)
#
# The program, bench/dkim_sign.c, is built here with cc -O2 against the static libraries of a
# CMake build (BUILD, default build/release: drover_auth, drover_dns, drover_core, refreshed
# with cmake --build), or straight from the sources in src/ when that build is not there or
# does not build (or DROVER_BENCH_FROM_SOURCES=1). Needs cc, pkg-config and the -dev packages
# of the build (OpenSSL 3, libevent, jansson, libunbound); the openssl command for the
# reference figures. No root, no network.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build/release}
seconds=${1:-3}
threads=${2:-$(nproc)}
pc="openssl libevent_core libevent_extra libevent_pthreads jansson libunbound"
work=$(mktemp -d "${TMPDIR:-/tmp}/drover-bench-dkim.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# shellcheck disable=SC2086 # $pc is a list of package names
cflags="-std=c17 -O2 -D_GNU_SOURCE -I$repo/src $(pkg-config --cflags $pc)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pc) -lpthread"

from_libs() {
	[ "${DROVER_BENCH_FROM_SOURCES:-0}" != 1 ] || return 1
	[ -f "$build/CMakeCache.txt" ] || return 1
	cmake --build "$build" --target drover_auth drover_dns drover_core >"$work/build.log" 2>&1 ||
	    return 1
	# shellcheck disable=SC2086
	cc $cflags "$here/dkim_sign.c" "$build/libdrover_auth.a" "$build/libdrover_dns.a" \
	    "$build/libdrover_core.a" $libs -o "$work/dkim_sign"
	echo "built against the static libraries of $build"
}

from_sources() {
	# shellcheck disable=SC2086
	cc $cflags "$here/dkim_sign.c" "$repo"/src/auth/dkim_*.c "$repo/src/auth/authres.c" \
	    "$repo"/src/core/*.c "$repo"/src/dns/*.c $libs -o "$work/dkim_sign"
	echo "built from the sources in $repo/src (cc -O2)"
}

from_libs || from_sources
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "OpenSSL: $(openssl version)"
echo
"$work/dkim_sign" "$seconds" "$threads"
echo
echo "OpenSSL's bare operations on one core (openssl speed -seconds $seconds):"
openssl speed -seconds "$seconds" rsa1024 rsa2048 rsa4096 ed25519 2>/dev/null |
    sed -n '/sign *verify/,$p'
