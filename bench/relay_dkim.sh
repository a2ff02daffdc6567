#!/usr/bin/env bash
# bench/relay_dkim.sh - end-to-end relay throughput with DKIM signing: Postfix with OpenDKIM
# (the usual open-source signing setup, a milter) against Drover signing at reception, and
# Drover unsigned for the cost of signing itself. smtp-source into the MTA, one smtp-sink on
# loopback counts what arrives (shared/bench/peer-relay.sh run).
#
#   bench/relay_dkim.sh [MESSAGES] [SESSIONS] [SIZE] [RUNS]      (defaults: 10000 32 4096 3)
#
# Every message is From: sender@bench.example (smtp-source's), signed with one RSA-2048 key
# (made by drover dkim keygen, relaxed/relaxed) by both MTAs; Drover's Ed25519 rate is
# measured too. Postfix is the peer of `peer-relay.sh postfix-setup` (port 2526); OpenDKIM
# (installed if missing) listens on 127.0.0.1:8891 and Postfix uses it as smtpd_milters only
# for this benchmark: the setting is removed and Postfix reloaded on exit. Runs alternate;
# compare ratios.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(dirname "$here")
shared=${DROVER_SHARED:-$(cd "$repo/../shared" 2>/dev/null && pwd || echo "$repo/../shared")}
drover_bin=${DROVER_BIN:-$repo/build/release/drover}
n=${1:-10000}
sessions=${2:-32}
size=${3:-4096}
runs=${4:-3}

die() { echo "relay_dkim.sh: $*" >&2; exit 1; }
[ -x "$drover_bin" ] || die "no drover at $drover_bin (make release, or set DROVER_BIN)"
[ -x "$shared/bench/peer-relay.sh" ] || die "no $shared/bench/peer-relay.sh (set DROVER_SHARED)"
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix and OpenDKIM are the peer)"

if ! command -v opendkim >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q opendkim >/dev/null || { apt-get update -q >/dev/null &&
		apt-get install -y -q opendkim >/dev/null; } || die "cannot install opendkim"
fi

work=$(mktemp -d /var/tmp/drover-relay-dkim.XXXXXX)
# OpenDKIM refuses files under a directory others can write to (/var/tmp): its own place.
milter=$(mktemp -d /run/drover-opendkim.XXXXXX)
drover_pid=
opendkim_pid=
cleanup() {
	if [ -n "$drover_pid" ]; then
		kill -TERM "$drover_pid" 2>/dev/null || true
		wait "$drover_pid" 2>/dev/null || true
	fi
	postconf -X smtpd_milters milter_default_action 2>/dev/null || true
	postfix reload >/dev/null 2>&1 || true
	[ -n "$opendkim_pid" ] && kill "$opendkim_pid" 2>/dev/null || true
	rm -rf "$work" "$milter"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$shared/bench/peer-relay.sh" postfix-setup >/dev/null
wait_listening 2526 || die "Postfix does not listen on 127.0.0.1:2526"

"$drover_bin" dkim keygen --domain bench.example --selector rsa --algorithm rsa2048 \
	--key "$work/rsa.pem" >/dev/null
"$drover_bin" dkim keygen --domain bench.example --selector ed --algorithm ed25519 \
	--key "$work/ed.pem" >/dev/null

# OpenDKIM as Postfix's milter, signing like Drover: the same key, relaxed/relaxed.
cp "$work/rsa.pem" "$milter/rsa.pem"
cat >"$milter/opendkim.conf" <<CONF
Mode s
Domain bench.example
Selector rsa
KeyFile $milter/rsa.pem
Canonicalization relaxed/relaxed
Socket inet:8891@127.0.0.1
PidFile $milter/opendkim.pid
Syslog no
UMask 007
CONF
opendkim -x "$milter/opendkim.conf" -f &
opendkim_pid=$!
wait_listening 8891 "$opendkim_pid" || die "opendkim does not listen on 127.0.0.1:8891"
postconf -e 'smtpd_milters = inet:127.0.0.1:8891' 'milter_default_action = tempfail'
postfix reload >/dev/null

port=$(free_port)
# One configuration per variant; conf is what start_drover runs.
write_conf() { # file [key-path]
	cat >"$1" <<CONF
hostname = "drover.bench"
event_log = "$work/events.jsonl"
relay_networks = { "127.0.0.0/8" }
spool {
  directory = "$work/spool"
}
listener "smtp" {
  address = "127.0.0.1:$port"
}
delivery {
  smarthost = { "127.0.0.1:2600" }
}
CONF
	if [ -n "${2:-}" ]; then
		cat >>"$1" <<CONF
dkim_key "bench" {
  domain = "bench.example"
  selector = "$3"
  key = "$2"
}
CONF
	fi
	"$drover_bin" check-config "$1" >/dev/null || die "bench config $1 refused"
}
write_conf "$work/unsigned.conf"
write_conf "$work/rsa.conf" "$work/rsa.pem" rsa
write_conf "$work/ed.conf" "$work/ed.pem" ed

run() { # port
	local out
	out=$("$shared/bench/peer-relay.sh" run "$1" "$n" "$sessions" "$size")
	echo "$out" | grep -q "delivered=$n\$" || die "not all delivered: $out"
	e2e=$(echo "$out" | sed -n 's/.*end_to_end_per_s=\([0-9]*\).*/\1/p')
}

echo "relay+DKIM benchmark: $n messages of $size octets, $sessions sessions, $runs runs each," \
	"$(nproc) CPUs, $(uname -r)"
pf=() du=() dr=() de=()
for i in $(seq 1 "$runs"); do
	run 2526; pf+=("$e2e"); echo "run $i postfix+opendkim rsa2048 end_to_end_per_s=$e2e"
	for v in unsigned rsa ed; do
		conf="$work/$v.conf"
		start_drover
		run "$port"
		stop_drover
		echo "run $i drover $v end_to_end_per_s=$e2e"
		case $v in unsigned) du+=("$e2e") ;; rsa) dr+=("$e2e") ;; ed) de+=("$e2e") ;; esac
	done
done
pm=$(median "${pf[@]}")
um=$(median "${du[@]}")
rm_=$(median "${dr[@]}")
em=$(median "${de[@]}")
echo "postfix+opendkim rsa2048 median end_to_end_per_s=$pm (runs: ${pf[*]})"
echo "drover unsigned          median end_to_end_per_s=$um (runs: ${du[*]})"
echo "drover rsa2048           median end_to_end_per_s=$rm_ (runs: ${dr[*]})"
echo "drover ed25519           median end_to_end_per_s=$em (runs: ${de[*]})"
echo "$rm_ $pm $um $em" | awk '{ printf "ratio drover-rsa/postfix-opendkim=%.2f drover-rsa/drover-unsigned=%.2f drover-ed25519/drover-unsigned=%.2f\n", $1 / $2, $1 / $3, $4 / $3 }'
