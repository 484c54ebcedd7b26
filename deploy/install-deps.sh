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
    libjansson-dev   # tokens' JSON (broker/jwt.c), and proto/vectors.json in the codec's test
    redis-server
    redis-sentinel   # the Sentinel failover test
    spin             # checks the coordination model, coord/model/
    kcat
    haproxy
    prometheus       # promtool, which checks GET /metrics (tests/integration/test_metrics.py)
    python3
    python3-msgpack  # the Python client (proto/python) and its tests, for Debian's python3
    python3-aiohttp  # the web examples (deploy/examples/search, fanout) and their tests, likewise
    curl
    chromium         # test_feedpage.py renders the /feeds HTML headless
    systemd          # systemd-analyze, which checks deploy/subway.service
    clang            # libFuzzer and its sanitizers: make fuzz, make test-fuzz (tests/fuzz/)
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

# The python3 that runs the tests may not be Debian's (a pyenv or venv one
# first on PATH): it gets msgpack, the Python client's one dependency, and
# aiohttp, the web examples', from PyPI. Debian's own python3 has them from
# python3-msgpack and python3-aiohttp above, so pip never touches the
# system's packages (PEP 668).
python_deps() {
    command -v python3 >/dev/null 2>&1 || return 0
    local want=()
    python3 -c 'import msgpack' 2>/dev/null || want+=('msgpack>=1.0')
    python3 -c 'import aiohttp' 2>/dev/null || want+=('aiohttp>=3.8')
    if [ "${#want[@]}" -gt 0 ]; then
        echo "install-deps: pip installing ${want[*]} for $(command -v python3)" >&2
        python3 -m pip install --quiet --disable-pip-version-check "${want[@]}"
    fi
}

if [ "${#missing[@]}" -eq 0 ]; then
    python_deps
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
python_deps
echo "install-deps: done" >&2
