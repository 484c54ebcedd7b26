#!/usr/bin/env bash
# install-deps.sh -- installs the Debian packages subway builds, tests and runs with.
#
#   bash deploy/install-deps.sh
#
# Checks each package with dpkg-query and installs only what is missing, with
# sudo when not root. Silent when everything is present; apt-get update runs
# only when something has to be installed. Starts no service itself (the
# redis-server package may start its own systemd unit; nothing relies on it:
# tests start their own servers on free ports).
set -euo pipefail

PACKAGES=(
    build-essential
    pkg-config
    librdkafka-dev
    libhiredis-dev
    libevent-dev
    libmsgpack-dev
    libcmocka-dev
    libssl-dev       # tokens' signatures (broker/jwt.c)
    libjansson-dev   # tokens' JSON (broker/jwt.c)
    redis-server
    redis-sentinel   # the Sentinel failover test
    spin             # checks the coordination model, coord/model/
    kcat
    haproxy
    prometheus       # promtool, which checks GET /metrics (tests/integration/test_metrics.py)
    python3
    curl
    chromium         # test_feedpage.py renders the /feeds HTML headless
    systemd          # systemd-analyze, which checks deploy/subway.service
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: this script needs a Debian-based system (dpkg-query, apt-get)." >&2
    echo "install-deps: install these by hand: ${PACKAGES[*]}" >&2
    exit 1
fi

# A package counts as present only when dpkg says it is fully installed
# ("install ok installed"); half-configured or removed-with-config does not.
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install-deps: missing ${missing[*]}, and not root and no sudo to install them." >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
