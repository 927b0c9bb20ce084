#!/usr/bin/env bash
# Make sure redis-server and redis-cli are on PATH for the tests that start real Redis servers
# (standalone, TLS, 3-node cluster on loopback). Idempotent: does nothing when both are present.
# Installs Debian's redis-server, redis-tools (and openssl when missing) with apt-get; needs root or
# passwordless sudo. Exits non-zero with a clear message when it cannot.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "ensure-redis: $(redis-server --version | cut -d' ' -f1-3) and redis-cli present"
    exit 0
fi

fail() {
    echo "ensure-redis: $*" >&2
    echo "ensure-redis: install them yourself (Debian/Ubuntu: apt-get install -y ${missing[*]})" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get on this machine"

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    fail "missing ${missing[*]}; installing needs root (or passwordless sudo)"
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-redis: installing ${missing[*]} with apt-get"
# The package's service is not wanted (the tests start their own servers on free ports): when this
# machine has no policy-rc.d (Docker images usually do), a temporary one keeps the package's
# post-install script from starting a redis-server on 6379.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from scripts/ensure-redis.sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi
"${as_root[@]}" apt-get update -q || fail "apt-get update failed"
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" || fail "apt-get install failed"

command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
    fail "redis-server/redis-cli still not on PATH after installing"
echo "ensure-redis: installed $(redis-server --version | cut -d' ' -f1-3)"
