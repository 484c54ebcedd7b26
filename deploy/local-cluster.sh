#!/usr/bin/env bash
# local-cluster.sh -- a subway cluster from local processes: Redis, Apache Kafka, three nodes, HAProxy.
#
#   bash deploy/local-cluster.sh up       start everything, wait until ready, print where it is
#   bash deploy/local-cluster.sh status   each process up/down, the nodes Redis knows (exit 3 if any is down)
#   bash deploy/local-cluster.sh down     stop everything (nothing running is fine)
#   bash deploy/local-cluster.sh restart NODE
#                                         stop node1, node2 or node3 (SIGTERM: it drains and hands
#                                         its feeds over) and start it again, same ports and id
#
# The same topology as docker-compose.yml, for machines without Docker:
#
#   redis-server   127.0.0.1:6390        no persistence (the nodes rebuild its state)
#   Kafka          127.0.0.1:19092       Apache Kafka (deploy/kafka-local.sh; the first `up` downloads
#                                        its jars), topics demo (4 partitions) and orders (6)
#   node1          127.0.0.1:7710        admin http://127.0.0.1:7711/stats
#   node2          127.0.0.1:7720        admin http://127.0.0.1:7721/stats
#   node3          127.0.0.1:7730        admin http://127.0.0.1:7731/stats
#   haproxy        127.0.0.1:7600        deploy/haproxy.cfg; stats http://127.0.0.1:7601/
#
# The nodes also run with --free-topic 'search.*' --free-topic-partitions 3
# and --demand-topic subway.demand, a topic (1 partition) made with the others
# (README: Free topics, Demand events).
#
# Pids and logs live in .cache/cluster/ at the top of the repository
# (git-ignored); `down` leaves the logs there. Every process runs in its own
# session, so it outlives the shell that ran `up` and ignores its Ctrl-C.
#
# Environment:
#   BIN=DIR         subway, subway-cli and tests/mock_kafka (default: bin)
#   KAFKA=apache    (the default) Apache Kafka, one KRaft node, from deploy/kafka-local.sh,
#                   fresh on every `up` (its data in CLUSTER_DIR/kafka)
#   KAFKA=mock      librdkafka's mock cluster (bin/tests/mock_kafka) instead: starts in
#                   a blink, but creates any topic a client names (so free topics and
#                   UNKNOWN_TOPIC cannot be seen)
#   KAFKA=BROKERS   use this Kafka (its topics must exist: demo, orders, subway.demand)
#   PORT_OFFSET=N   add N to every port above, to run a second cluster beside the
#                   first (haproxy then runs a copy of haproxy.cfg with the ports moved)
#   CLUSTER_DIR=DIR where pids and logs go (default: .cache/cluster)
#   READY_TIMEOUT=S how long `up` waits for each step (default: 30)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

# shellcheck source=deploy/proc.sh
. "$here/proc.sh"
BIN=$(abspath "${BIN:-$top/bin}")
STATE=$(abspath "${CLUSTER_DIR:-$top/.cache/cluster}")
PIDDIR=$STATE
OFF=${PORT_OFFSET:-0}
READY_TIMEOUT=${READY_TIMEOUT:-30}
case "$OFF" in ''|*[!0-9]*) echo "local-cluster: PORT_OFFSET must be a non-negative integer" >&2; exit 2 ;; esac
case "$READY_TIMEOUT" in ''|*[!0-9]*|0) echo "local-cluster: READY_TIMEOUT must be a positive integer" >&2; exit 2 ;; esac

REDIS_PORT=$((6390 + OFF))
LB_PORT=$((7600 + OFF))
STATS_PORT=$((7601 + OFF))
NODES=(node1 node2 node3)
node_port() { echo $((7700 + ${1#node} * 10 + OFF)); }        # node1 -> 7710
admin_port() { echo $((7701 + ${1#node} * 10 + OFF)); }       # node1 -> 7711
TOPICS=(demo:4 orders:6 subway.demand:1)
DEMAND_TOPIC=subway.demand   # the nodes' --demand-topic (deploy/examples/demand-producer.py reads it)
KAFKA_PORT=$((19092 + OFF))   # and the controller on KAFKA_PORT+1
KAFKA_MODE=${KAFKA:-apache}
case "$KAFKA_MODE" in apache|mock) EXTERNAL="" ;; *) EXTERNAL=$KAFKA_MODE; KAFKA_MODE=external ;; esac
FREE_TOPIC='search.*'
# the order `down` stops things in: clients' side first, state last
PROCS=(haproxy "${NODES[@]}" kafka redis)

say() { printf 'local-cluster: %s\n' "$*"; }
die() { printf 'local-cluster: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------- processes
launch() {  # launch NAME CMD...: runs CMD in its own session, logs to STATE/NAME.log
    local name=$1 pid
    shift
    setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid $(start_time "$pid")" >"$STATE/$name.pid"
}

stop_one() {  # stop_one NAME: SIGTERM, up to 15 s (a node drains), then SIGKILL
    local name=$1 pid i
    pid=$(pid_of "$name")
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            [ -n "$(pid_of "$name")" ] || break
            sleep 0.1
        done
        if [ -n "$(pid_of "$name")" ]; then
            say "$name (pid $pid) ignored SIGTERM for 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$STATE/$name.pid"
}


http_status() {  # http_status URL: the HTTP status code, or 000
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# ------------------------------------------------------------------- up

fail_up() {  # fail_up NAME WHAT: the log tail of NAME, stop what was started, exit 1
    local name=$1 what=$2
    echo "local-cluster: $what" >&2
    if [ -f "$STATE/$name.log" ]; then
        echo "local-cluster: the end of $STATE/$name.log:" >&2
        tail -n 30 "$STATE/$name.log" | sed 's/^/  | /' >&2
    fi
    echo "local-cluster: stopping what was started" >&2
    do_down >/dev/null 2>&1 || true
    exit 1
}

wait_for() {  # wait_for NAME WHAT CHECK...: polls CHECK until it succeeds, NAME dies, or READY_TIMEOUT
    local name=$1 what=$2 i
    shift 2
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ -z "$(pid_of "$name")" ]; then
            fail_up "$name" "$name exited before $what"
        fi
        sleep 0.1
    done
    fail_up "$name" "$name: no $what within ${READY_TIMEOUT}s"
}

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
redis_ready() { [ "$(redis_cli ping 2>/dev/null)" = PONG ]; }
node_healthy() { [ "$(http_status "http://127.0.0.1:$(admin_port "$1")/readyz")" = 200 ]; }
node_registered() { [ "$(redis_cli HEXISTS subway:nodes "$1" 2>/dev/null)" = 1 ]; }

haproxy_states() {  # node name and status per backend server, from the stats CSV
    curl -s -m 2 "http://127.0.0.1:$STATS_PORT/;csv" 2>/dev/null |
        awk -F, '$1 == "subway_nodes" && $2 != "FRONTEND" && $2 != "BACKEND" { print $2, $18 }'
}
haproxy_all_up() {
    local n
    n=$(haproxy_states | awk '$2 == "UP"' | wc -l)
    [ "$n" -eq "${#NODES[@]}" ]
}

haproxy_cfg() {  # the config to run: deploy/haproxy.cfg, or a copy with the ports moved
    if [ "$OFF" -eq 0 ]; then
        echo "$here/haproxy.cfg"
        return
    fi
    local script=() n base
    script+=(-e "s/127\.0\.0\.1:7600\b/127.0.0.1:$LB_PORT/" -e "s/127\.0\.0\.1:7601\b/127.0.0.1:$STATS_PORT/")
    for n in "${NODES[@]}"; do
        base=$((7700 + ${n#node} * 10))
        script+=(-e "s/127\.0\.0\.1:$base\b/127.0.0.1:$(node_port "$n")/"
                 -e "s/check port $((base + 1))\b/check port $(admin_port "$n")/")
    done
    sed "${script[@]}" "$here/haproxy.cfg" >"$STATE/haproxy.cfg"
    echo "$STATE/haproxy.cfg"
}

need() {  # need CMD WHY
    command -v "$1" >/dev/null 2>&1 || die "$1 not found ($2); bash deploy/install-deps.sh installs it"
}

do_up() {
    local running=() wanted=() n p
    for n in "${PROCS[@]}"; do
        [ "$n" = kafka ] && [ -n "$EXTERNAL" ] && continue
        wanted+=("$n")
        if [ -n "$(pid_of "$n")" ]; then running+=("$n"); fi
    done
    if [ "${#running[@]}" -eq "${#wanted[@]}" ]; then
        say "already running"
        print_summary
        return 0
    fi
    if [ "${#running[@]}" -gt 0 ]; then
        die "partly running (${running[*]}); run 'bash deploy/local-cluster.sh down' first"
    fi

    [ -x "$BIN/subway" ] || die "$BIN/subway not found or not executable (build with make, or set BIN=DIR)"
    [ "$KAFKA_MODE" != mock ] || [ -x "$BIN/tests/mock_kafka" ] ||
        die "$BIN/tests/mock_kafka not found (make $BIN/tests/mock_kafka), or set KAFKA=apache|BROKERS"
    need redis-server "the coordination store"
    need redis-cli "to check Redis"
    need haproxy "the load balancer"
    need curl "to check the nodes' health"
    need setsid "to detach the processes (util-linux)"

    local ports=("$REDIS_PORT:redis" "$LB_PORT:haproxy" "$STATS_PORT:haproxy stats")
    for n in "${NODES[@]}"; do ports+=("$(node_port "$n"):$n" "$(admin_port "$n"):$n admin"); done
    if [ "$KAFKA_MODE" = apache ]; then ports+=("$KAFKA_PORT:kafka" "$((KAFKA_PORT + 1)):kafka controller"); fi
    for p in "${ports[@]}"; do
        if port_busy "${p%%:*}"; then
            die "port ${p%%:*} (${p#*:}) is already in use; another cluster? ('bash deploy/local-cluster.sh status'," \
                "or PORT_OFFSET=N for a second one)"
        fi
    done

    mkdir -p "$STATE"
    rm -f "$STATE"/*.pid "$STATE/kafka.ready" "$STATE/kafka.bootstrap"

    # Redis: nothing on disk; a restart loses it all and the nodes rebuild it.
    mkdir -p "$STATE/redis"
    launch redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$STATE/redis" --daemonize no
    wait_for redis "answer to PING on port $REDIS_PORT" redis_ready

    local bootstrap
    if [ "$KAFKA_MODE" = external ]; then
        bootstrap=$EXTERNAL
    elif [ "$KAFKA_MODE" = apache ]; then
        bootstrap=$(start_apache_kafka) || exit 1
    else
        local targs=() t
        for t in "${TOPICS[@]}"; do targs+=(--topic "$t"); done
        # mock_kafka ends itself when its parent exits (PR_SET_PDEATHSIG, so
        # the tests never leak one), and this script's shell exits right
        # after `up`: give it a parent that lives exactly as long as it does
        # and passes SIGTERM on.
        # shellcheck disable=SC2016  # $pid and $@ are the inner shell's
        launch kafka bash -c 'trap "kill -TERM \$pid 2>/dev/null; wait \$pid; exit" TERM INT
                              "$@" & pid=$!; wait $pid' mock_kafka \
            "$BIN/tests/mock_kafka" "${targs[@]}" --ready-file "$STATE/kafka.ready"
        wait_for kafka "ready file $STATE/kafka.ready" test -s "$STATE/kafka.ready"
        bootstrap=$(cat "$STATE/kafka.ready")
    fi
    echo "$bootstrap" >"$STATE/kafka.bootstrap"

    echo "$KAFKA_MODE" >"$STATE/kafka.mode"
    for n in "${NODES[@]}"; do launch_node "$n" "$bootstrap"; done
    for n in "${NODES[@]}"; do wait_node "$n"; done

    launch haproxy haproxy -f "$(haproxy_cfg)" -db
    wait_for haproxy "node1..node3 UP on its stats page (port $STATS_PORT)" haproxy_all_up
    print_summary
}

start_apache_kafka() {  # one KRaft node in STATE/kafka, fresh, with TOPICS; prints its bootstrap
    local kl=("$here/kafka-local.sh") out t
    rm -rf "$STATE/kafka"
    say "starting Apache Kafka on 127.0.0.1:$KAFKA_PORT (deploy/kafka-local.sh; the first time it downloads the jars)" >&2
    out=$(bash "${kl[@]}" start --dir "$STATE/kafka" --port "$KAFKA_PORT") ||
        fail_up kafka "starting Apache Kafka (deploy/kafka-local.sh start) failed"
    # the pid file `down` and `status` use, as for the other processes
    cp "$STATE/kafka/node-1.pid" "$STATE/kafka.pid"
    for t in "${TOPICS[@]}"; do
        bash "${kl[@]}" topic "${t%%:*}" "${t#*:}" --dir "$STATE/kafka" >>"$STATE/kafka.log" 2>&1 ||
            fail_up kafka "creating topic ${t%%:*} failed"
    done
    sed -n 's/^BOOTSTRAP //p' <<<"$out"
}

launch_node() {  # launch_node NAME BOOTSTRAP
    launch "$1" "$BIN/subway" --listen "127.0.0.1:$(node_port "$1")" --admin "127.0.0.1:$(admin_port "$1")" \
        --kafka "$2" --redis "127.0.0.1:$REDIS_PORT" --node-id "$1" \
        --free-topic "$FREE_TOPIC" --free-topic-partitions 3 --demand-topic "$DEMAND_TOPIC"
}

wait_node() {  # wait_node NAME: until it is ready and registered in Redis
    wait_for "$1" "200 from GET /readyz on port $(admin_port "$1")" node_healthy "$1"
    wait_for "$1" "registration in Redis (HEXISTS subway:nodes $1)" node_registered "$1"
}

kafka_desc() {
    case "$(cat "$STATE/kafka.mode" 2>/dev/null || echo "$KAFKA_MODE")" in
        apache) echo "Apache Kafka, deploy/kafka-local.sh; log $STATE/kafka/node-1.log" ;;
        mock) echo "librdkafka's mock: creates any topic asked for" ;;
        *) echo "\$KAFKA" ;;
    esac
}

print_summary() {
    local bootstrap n cli="$BIN/subway-cli"
    bootstrap=$(cat "$STATE/kafka.bootstrap" 2>/dev/null || echo "${EXTERNAL:-?}")
    case "$cli" in "$top"/*) cli=${cli#"$top"/} ;; esac
    cat <<EOF

  local subway cluster (pids and logs in $STATE)

  haproxy   127.0.0.1:$LB_PORT      clients connect here; stats http://127.0.0.1:$STATS_PORT/
EOF
    for n in "${NODES[@]}"; do
        printf '  %-9s 127.0.0.1:%-6s admin http://127.0.0.1:%s/stats\n' "$n" "$(node_port "$n")" "$(admin_port "$n")"
    done
    cat <<EOF
  redis     127.0.0.1:$REDIS_PORT
  kafka     $bootstrap   ($(kafka_desc)) topics ${TOPICS[*]}; free topics $FREE_TOPIC

  Subscribe through HAProxy:
    $cli -s 127.0.0.1:$LB_PORT sub orders cust-1
  Produce straight to Kafka (murmur2_random partitions keys like the Java client, as subway expects):
    echo 'cust-1:{"order":1}' | kcat -P -b $bootstrap -t orders -K: -X partitioner=murmur2_random
  Look at the coordination state:
    redis-cli -p $REDIS_PORT --scan --pattern 'subway:feed:*:count'
    redis-cli -p $REDIS_PORT HGETALL subway:nodes
    curl -s 127.0.0.1:$(admin_port node1)/stats
  Then:
    bash deploy/local-cluster.sh status
    bash deploy/local-cluster.sh down

EOF
}

# ----------------------------------------------------------------- down

do_down() {
    local n any=""
    for n in "${PROCS[@]}"; do
        if [ -n "$(pid_of "$n")" ]; then
            any=1
        fi
        stop_one "$n"
    done
    rm -f "$STATE/kafka.ready" "$STATE/kafka.bootstrap" "$STATE/kafka.mode"
    if [ -z "$any" ]; then
        say "nothing running"
    else
        say "down (logs kept in $STATE)"
    fi
}

# -------------------------------------------------------------- restart

do_restart() {  # do_restart NAME: one node down and up again, the rest untouched
    local n=${1:-} bootstrap
    case " ${NODES[*]} " in *" $n "*) ;; *) die "usage: restart NODE (one of: ${NODES[*]})" ;; esac
    [ -n "$(pid_of redis)" ] || die "the cluster is not running (bash deploy/local-cluster.sh up)"
    bootstrap=$(cat "$STATE/kafka.bootstrap" 2>/dev/null) || die "no $STATE/kafka.bootstrap: is the cluster up?"
    stop_one "$n"
    port_busy "$(node_port "$n")" && die "port $(node_port "$n") ($n) is still in use after stopping $n"
    launch_node "$n" "$bootstrap"
    # a failure here stops only this node, not the whole cluster
    fail_up() { echo "local-cluster: $2" >&2; tail -n 30 "$STATE/$1.log" 2>/dev/null | sed 's/^/  | /' >&2; stop_one "$1"; exit 1; }
    wait_node "$n"
    say "restarted $n (pid $(pid_of "$n")) on 127.0.0.1:$(node_port "$n")"
}

# --------------------------------------------------------------- status

do_status() {
    local n pid down=0 extra
    for n in "${PROCS[@]}"; do
        pid=$(pid_of "$n")
        extra=""
        case "$n" in
            node*) extra="127.0.0.1:$(node_port "$n")  readyz $(http_status "http://127.0.0.1:$(admin_port "$n")/readyz")" ;;
            redis) extra="127.0.0.1:$REDIS_PORT" ;;
            haproxy) extra="127.0.0.1:$LB_PORT" ;;
            kafka) extra=$(cat "$STATE/kafka.bootstrap" 2>/dev/null || true) ;;
        esac
        if [ -n "$pid" ]; then
            printf '  %-8s up    pid %-7s %s\n' "$n" "$pid" "$extra"
        elif [ "$n" = kafka ] && [ -n "$EXTERNAL" ]; then
            printf '  %-8s external  %s\n' "$n" "$EXTERNAL"
        else
            printf '  %-8s down\n' "$n"
            down=1
        fi
    done
    if [ -n "$(pid_of redis)" ] && command -v redis-cli >/dev/null 2>&1; then
        echo
        echo "  nodes registered in Redis (subway:nodes; liveness key TTL in ms):"
        local ids id
        ids=$(redis_cli HKEYS subway:nodes 2>/dev/null | sort || true)
        if [ -z "$ids" ]; then
            echo "    (none)"
        fi
        for id in $ids; do
            printf '    %-8s addr %-16s pttl %s\n' "$id" "$(redis_cli HGET "subway:node:$id" addr 2>/dev/null)" \
                "$(redis_cli PTTL "subway:node:$id" 2>/dev/null)"
        done
    fi
    if [ -n "$(pid_of haproxy)" ]; then
        echo
        echo "  haproxy's view of the nodes:"
        haproxy_states | sed 's/^/    /'
    fi
    return "$down"
}

case "${1:-}" in
    up) do_up ;;
    down) do_down ;;
    status) do_status || exit 3 ;;
    restart) do_restart "${2:-}" ;;
    *)
        echo "usage: bash deploy/local-cluster.sh up|down|status|restart NODE" >&2
        exit 2
        ;;
esac
