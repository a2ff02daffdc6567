#!/usr/bin/env bash
# Install the Debian 12 packages Drover builds and tests with, only those that are missing.
# Usage: scripts/deps.sh [build|test]   (test adds the integration-test peers and tools)
set -eu
want=(build-essential cmake pkg-config libevent-dev libssl-dev liblmdb-dev libconfuse-dev
  libjansson-dev libpcre2-dev libunbound-dev libpsl-dev publicsuffix libcrypt-dev libcmocka-dev
  libidn2-dev)
# Webhooks (docs/webhooks.md): libcurl with OpenSSL, the TLS library Drover already uses.
want+=(libcurl4-openssl-dev)
if [ "${1:-build}" = test ]; then
  want+=(clang clang-format libclang-rt-14-dev python3-pytest python3-dkim python3-dnslib python3-aiosmtpd
    swaks libnet-ssleay-perl postfix lmdb-utils openssl)
fi
# The user drover serve becomes once started as root (the embedded default of `user`).
if [ "$(id -u)" -eq 0 ] && ! id -u drover >/dev/null 2>&1; then
  echo "deps: creating the system user drover"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin drover
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then echo "deps: run as root to install: ${missing[*]}" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
# Postfix comes only for smtp-source/smtp-sink (tests, benchmarks): no mail system configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
