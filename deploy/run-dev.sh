#!/usr/bin/env bash
# run-dev.sh -- `make run`: a dev node (embedded Kafka) and a demo producer writing to topic "demo".
#
#   bash deploy/run-dev.sh BIN        (BIN holds subway and subway-cli; make passes it)
#
# Starts BIN/subway --dev, waits for its embedded Kafka bootstrap address, then
# runs one long-lived kcat producer fed by a loop: a few JSON records a second
# to topic "demo", keys user-1..user-5, partitioned like the Java client
# (murmur2), which is what subway targets by default. The node's log is shown
# as it goes. Ctrl-C stops everything.
set -euo pipefail

BIN=${1:-bin}
SUBWAY="$BIN/subway"
CLI="$BIN/subway-cli"
BOOT_WAIT_S=30           # how long the node may take to report its bootstrap
RATE_DELAY=0.1   # 10 records/s in all: 2 a second for each user

die() { echo "run-dev: $*" >&2; exit 1; }

[ -x "$SUBWAY" ] || die "$SUBWAY not found or not executable (build it with make)"
KCAT=$(command -v kcat || command -v kafkacat || true)
[ -n "$KCAT" ] || die "kcat not found (bash deploy/install-deps.sh installs it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/subway-dev.XXXXXX")
log="$tmp/subway.log"
node_pid="" kcat_pid="" loop_pid="" tail_pid=""

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
    stop_pid "$loop_pid" 1
    stop_pid "$kcat_pid" 2
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
"$SUBWAY" --dev 2>"$log" &
node_pid=$!

# Both lines must show up: the embedded Kafka's address, then the listener.
show_log() { sed 's/^/  | /' "$log" >&2; }
bootstrap="" listen=""
for ((i = 0; i < BOOT_WAIT_S * 10; i++)); do
    line=$(grep -m1 '^subway: dev: embedded Kafka bootstrap ' "$log" || true)
    bootstrap=${line##* }
    line=$(grep -m1 '^subway: listening on ' "$log" || true)
    listen=${line#subway: listening on }
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
    echo "run-dev: subway --dev did not log 'subway: dev: embedded Kafka bootstrap ADDR' and" \
         "'subway: listening on ADDR' within ${BOOT_WAIT_S}s; its log:" >&2
    show_log
    exit 1
fi

# ------------------------------------------------------- the demo producer
# One kcat for the whole run, fed through a FIFO so both ends have a pid to
# stop. linger.ms=5 sends each line within milliseconds.
mkfifo "$tmp/demo.fifo"
"$KCAT" -P -b "$bootstrap" -t demo -K: -X partitioner=murmur2_random -X linger.ms=5 \
    <"$tmp/demo.fifo" 2>>"$tmp/kcat.log" &
kcat_pid=$!

demo_loop() {
    local seq=0 user ts
    while :; do
        seq=$((seq + 1))
        user="user-$(( (seq - 1) % 5 + 1 ))"
        ts=$(date +%s%3N)
        printf '%s:{"user":"%s","seq":%d,"ts":%s}\n' "$user" "$user" "$seq" "$ts" || exit 0
        sleep "$RATE_DELAY"
    done
}
demo_loop >"$tmp/demo.fifo" &
loop_pid=$!

cat <<EOF

  subway dev node        $listen   (admin: http://127.0.0.1:7701/stats)
  embedded Kafka         $bootstrap
  demo producer          topic "demo", keys user-1..user-5, ~10 records/s

  In another terminal:
    $CLI sub demo user-3
    $KCAT -P -b $bootstrap -t demo -K: -X partitioner=murmur2_random
      (then type lines like  user-3:hello)

  Ctrl-C stops the node and the producer. Node log follows:

EOF

tail -n +1 -f --pid="$node_pid" "$log" &
tail_pid=$!

# Runs until Ctrl-C (the trap) or until the node or the producer dies.
while kill -0 "$node_pid" 2>/dev/null; do
    if ! kill -0 "$kcat_pid" 2>/dev/null; then
        echo "run-dev: the demo producer (kcat) stopped; its log:" >&2
        sed 's/^/  | /' "$tmp/kcat.log" >&2
        exit 1
    fi
    sleep 0.5
done
wait "$node_pid" && rc=0 || rc=$?
node_pid=""
stop_pid "$tail_pid" 1
tail_pid=""
echo "run-dev: subway exited (status $rc); the end of its log:" >&2
tail -n 20 "$log" | sed 's/^/  | /' >&2
exit 1
