#!/usr/bin/env bash
# run-dev.sh -- `make run`: a dev node (embedded Kafka) and a demo producer writing to topic "demo".
#
#   bash deploy/run-dev.sh BIN [SUBWAY-OPTION...]
#                                     (BIN holds subway and subway-cli; make passes it,
#                                     and make run ARGS='...' the options)
#
# Starts BIN/subway --dev SUBWAY-OPTION... (e.g. --listen 127.0.0.1:7800
# --admin 127.0.0.1:7801; $SUBWAY_ARGS, split on blanks, goes before them),
# waits for its embedded Kafka bootstrap address and its listener, then runs
# the demo producer: a few JSON records a second to topic "demo", keys
# user-1..user-5, each with its send time in "ts" (ms). The node's log is
# shown as it goes. Ctrl-C stops everything.
#
# The demo records are published through the node itself (one
# `subway-cli pub demo user-N -` per key, fed a line at a time), which puts
# them in the embedded Kafka with the Java client's partitioner (murmur2) and
# within milliseconds. Not kcat -P: it reads its input 128 bytes at a time
# with fread() and hands a line on only once the next 128 bytes have come,
# so short lines written slowly reached Kafka in bursts 1-2 s late.
set -euo pipefail

BIN=${1:-bin}
SUBWAY="$BIN/subway"
CLI="$BIN/subway-cli"
BOOT_WAIT_S=30           # how long the node may take to report its bootstrap
RATE_DELAY=0.1   # 10 records/s in all: 2 a second for each user
USERS=5
shift || true
# shellcheck disable=SC2206  # SUBWAY_ARGS is split on blanks on purpose
NODE_ARGS=(${SUBWAY_ARGS:-} "$@")

die() { echo "run-dev: $*" >&2; exit 1; }

[ -x "$SUBWAY" ] || die "$SUBWAY not found or not executable (build it with make)"
[ -x "$CLI" ] || die "$CLI not found or not executable (build it with make)"
KCAT=$(command -v kcat || command -v kafkacat || true)
[ -n "$KCAT" ] || die "kcat not found (bash deploy/install-deps.sh installs it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/subway-dev.XXXXXX")
log="$tmp/subway.log"
node_pid="" loop_pid="" tail_pid=""
pub_pids=()

stop_pid() {  # stop_pid PID [seconds]: SIGTERM, wait up to the bound, then SIGKILL
    local pid=$1 bound=${2:-5} i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < bound * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    trap - INT TERM EXIT
    local p
    stop_pid "$loop_pid" 1
    for p in ${pub_pids[@]+"${pub_pids[@]}"}; do stop_pid "$p" 2; done
    stop_pid "$node_pid" 10
    stop_pid "$tail_pid" 1
    rm -rf "$tmp"
}
on_signal() {
    echo
    echo "run-dev: stopping"
    cleanup
    exit 0
}
trap on_signal INT TERM
trap cleanup EXIT

# ---------------------------------------------------------------- the node
"$SUBWAY" --dev ${NODE_ARGS[@]+"${NODE_ARGS[@]}"} 2>"$log" &
node_pid=$!

# Both lines must show up: the embedded Kafka's address, then the listener.
show_log() { sed 's/^/  | /' "$log" >&2; }
bootstrap="" listen="" admin=""
for ((i = 0; i < BOOT_WAIT_S * 10; i++)); do
    # Lines start "subway[NODE]: " (just "subway: " before the node knows its id).
    line=$(grep -m1 -E '^subway(\[[^]]+\])?: dev: embedded Kafka bootstrap ' "$log" || true)
    bootstrap=${line##* }
    line=$(grep -m1 -E '^subway(\[[^]]+\])?: listening on ' "$log" || true)
    listen=${line##* }
    line=$(grep -m1 -E '^subway(\[[^]]+\])?: admin on http://' "$log" || true)
    admin=${line##*admin on }
    [ -n "$bootstrap" ] && [ -n "$listen" ] && break
    if ! kill -0 "$node_pid" 2>/dev/null; then
        wait "$node_pid" && rc=0 || rc=$?
        node_pid=""
        echo "run-dev: subway --dev exited (status $rc) before it was ready; its log:" >&2
        show_log
        exit 1
    fi
    sleep 0.1
done
if [ -z "$bootstrap" ] || [ -z "$listen" ]; then
    echo "run-dev: subway --dev did not log 'subway[NODE]: dev: embedded Kafka bootstrap ADDR' and" \
         "'subway[NODE]: listening on ADDR' within ${BOOT_WAIT_S}s; its log:" >&2
    show_log
    exit 1
fi

# ------------------------------------------------------- the demo producer
# One `subway-cli pub demo user-N -` per key for the whole run, each fed
# through its own FIFO by one loop, so every process has a pid to stop.
demo_loop() {
    local seq=0 n ts
    exec 3>"$tmp/demo-1.fifo" 4>"$tmp/demo-2.fifo" 5>"$tmp/demo-3.fifo" 6>"$tmp/demo-4.fifo" 7>"$tmp/demo-5.fifo"
    while :; do
        seq=$((seq + 1))
        n=$(( (seq - 1) % USERS + 1 ))
        ts=$(date +%s%3N)
        printf '{"user":"user-%d","seq":%d,"ts":%s}\n' "$n" "$seq" "$ts" >&$((n + 2)) || exit 0
        sleep "$RATE_DELAY"
    done
}
for ((n = 1; n <= USERS; n++)); do
    mkfifo "$tmp/demo-$n.fifo"
    "$CLI" -s "$listen" pub demo "user-$n" - <"$tmp/demo-$n.fifo" >/dev/null 2>>"$tmp/demo.log" &
    pub_pids+=($!)
done
demo_loop &
loop_pid=$!

cat <<EOF

  subway dev node        $listen   (admin: ${admin:-off})
  embedded Kafka         $bootstrap
  demo producer          topic "demo", keys user-1..user-5, ~10 records/s

  In another terminal:
    $CLI$([ "$listen" = 127.0.0.1:7700 ] || echo " -s $listen") sub demo user-3
    echo 'user-3:hello' | $KCAT -P -b $bootstrap -t demo -K: -X partitioner=murmur2_random

  Ctrl-C stops the node and the producer. Node log follows:

EOF

tail -n +1 -f --pid="$node_pid" "$log" &
tail_pid=$!

# Runs until Ctrl-C (the trap) or until the node or the producer dies.
while kill -0 "$node_pid" 2>/dev/null; do
    for p in "${pub_pids[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "run-dev: the demo producer (subway-cli pub) stopped; its log:" >&2
            sed 's/^/  | /' "$tmp/demo.log" >&2
            exit 1
        fi
    done
    sleep 0.5
done
wait "$node_pid" && rc=0 || rc=$?
node_pid=""
stop_pid "$tail_pid" 1
tail_pid=""
echo "run-dev: subway exited (status $rc); the end of its log:" >&2
tail -n 20 "$log" | sed 's/^/  | /' >&2
exit 1
