#!/usr/bin/env bash
# kafka-local.sh -- a real Apache Kafka (KRaft, 1 or 3 nodes) from Maven Central, without Docker.
#
#   bash deploy/kafka-local.sh fetch                 download the broker's jars (once; then a no-op)
#   bash deploy/kafka-local.sh start [--brokers 1|3] [--dir DIR] [--port P] [--watch-pid PID]
#                                                    start, wait until every broker answers, print
#                                                    "BOOTSTRAP 127.0.0.1:P[,...]"
#   bash deploy/kafka-local.sh stop [--dir DIR] [--broker N]
#                                                    stop every broker (or only broker N)
#   bash deploy/kafka-local.sh start-broker N [--dir DIR]
#                                                    start broker N again after `stop --broker N`
#   bash deploy/kafka-local.sh status [--dir DIR]    each broker up/down (exit 3 if any is down)
#   bash deploy/kafka-local.sh topic NAME PARTITIONS [RF] [--dir DIR]
#                                                    create a topic, wait until every broker has it
#   bash deploy/kafka-local.sh tool CLASS|ALIAS [ARGS...]
#                                                    run a Kafka tool with the fetched jars; aliases:
#                                                    console-producer console-consumer topics storage
#
# `fetch` resolves org.apache.kafka:kafka_2.13 and kafka-tools (plus
# reload4j, the logging backend Kafka 3.7 ships with) with Maven into
# .cache/kafka/lib at the top of the repository (git-ignored), with a Maven
# repository of its own in .cache/kafka/m2 that is removed once the jars are
# in place (about 70 MB downloaded, 46 MB kept). It installs
# default-jdk-headless and maven with apt (sudo when not root) only when java
# or mvn is missing. `start` and `tool` fetch first when needed.
#
# Every node is a combined broker and controller (process.roles=broker,controller)
# in one KRaft quorum. Node N (1..3) listens for clients on P+10*(N-1) and for
# the quorum on P+10*(N-1)+1, so with the default port 19092:
#
#   node 1   127.0.0.1:19092   controller 127.0.0.1:19093
#   node 2   127.0.0.1:19102   controller 127.0.0.1:19103   (--brokers 3)
#   node 3   127.0.0.1:19112   controller 127.0.0.1:19113   (--brokers 3)
#
# With three nodes one can be stopped (`stop --broker 2`: a controlled
# shutdown, its leaderships move at once) and the other two keep the quorum,
# elect new partition leaders and serve clients. Stopping a second one loses
# the quorum: the last node then waits for it until STOP_TIMEOUT and kill -9.
# So `stop` stops all nodes at once (three take ~5 s: the last one's Raft
# client waits that long for the others to acknowledge its departure).
#
# DIR (default .cache/kafka/run) holds cluster.env (the settings `start` was
# given), log4j.properties, and per node node-N/server.properties, node-N/data,
# node-N.log and node-N.pid. `start` on a DIR that already holds a cluster
# starts it again with its data. Topics are never created automatically
# (auto.create.topics.enable=false); replication factors of the internal
# topics equal the number of nodes; segments and retention are small.
#
# --watch-pid PID: the nodes are stopped when process PID exits (the tests
# pass their own pid, so a killed test run leaves no JVM behind).
#
# Environment:
#   KAFKA_VERSION=V      (default 3.7.2; other 3.x may work, 3.7 is what is tested)
#   KAFKA_CACHE=DIR      jars and the default DIR (default .cache/kafka)
#   KAFKA_HEAP=OPTS      broker heap (default "-Xms64m -Xmx384m")
#   KAFKA_JVM=OPTS       broker collector and compiler flags (default
#                        "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"; Kafka's own
#                        scripts use "-XX:+UseG1GC -XX:MaxGCPauseMillis=20")
#   READY_TIMEOUT=S      how long start/start-broker/topic wait (default 60)
#   STOP_TIMEOUT=S       how long stop waits before kill -9 (default 15)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"

# shellcheck source=deploy/proc.sh
. "$here/proc.sh"

KAFKA_VERSION=${KAFKA_VERSION:-3.7.2}
SCALA_VERSION=2.13
SLF4J_VERSION=1.7.36      # what Kafka 3.7's distribution ships (libs/slf4j-reload4j-1.7.36.jar)
RELOAD4J_VERSION=1.2.25   # likewise (libs/reload4j-1.2.25.jar)
DEP_PLUGIN_VERSION=3.6.1  # pinned so Maven does not look up the newest one
CACHE=$(abspath "${KAFKA_CACHE:-$top/.cache/kafka}")
LIB="$CACHE/lib"
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-15}
case "$READY_TIMEOUT" in ''|*[!0-9]*|0) echo "kafka-local: READY_TIMEOUT must be a positive integer" >&2; exit 2 ;; esac
case "$STOP_TIMEOUT" in ''|*[!0-9]*|0) echo "kafka-local: STOP_TIMEOUT must be a positive integer" >&2; exit 2 ;; esac

# Two cores run the tests, the node and up to three of these at once: small
# heaps, the serial collector, and C1 only (starts faster; a test broker
# never gets hot enough for C2 to pay off). The benchmark wants a broker
# tuned like a production one instead, and sets KAFKA_HEAP and KAFKA_JVM.
read -r -a BROKER_HEAP <<<"${KAFKA_HEAP:--Xms64m -Xmx384m}"
read -r -a BROKER_JVM <<<"${KAFKA_JVM:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
JVM_COMMON=(-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true)
TOOL_JVM=(-Xms16m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${JVM_COMMON[@]}"
          -Dlog4j.configuration="file:$CACHE/tools-log4j.properties")

say() { printf 'kafka-local: %s\n' "$*"; }
die() { printf 'kafka-local: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------- fetch

fetched() {  # true when LIB holds a complete fetch of KAFKA_VERSION
    [ -f "$LIB/kafka.env" ] && grep -qx "KAFKA_VERSION=$KAFKA_VERSION" "$LIB/kafka.env"
}

install_pkgs() {  # install_pkgs PKG...: apt-get install, with sudo when not root
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing $*, and not root and no sudo to install them"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing $*, and no apt-get to install them; install a JDK (11+) and Maven by hand"
    say "installing $*" >&2
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed"
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null || die "apt-get install $* failed"
}

need_java() {  # need_java [mvn]: installs what of java (and mvn) is missing
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
    if [ "${1:-}" = mvn ]; then
        command -v mvn >/dev/null 2>&1 || missing+=(maven)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        install_pkgs "${missing[@]}"
    fi
}

write_pom() {  # the throwaway project whose runtime dependencies are the broker
    cat >"$CACHE/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by deploy/kafka-local.sh fetch: the Apache Kafka broker runtime, nothing else -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.subway</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- TopicCommand lives here since 3.7; Connect and JAX-RS are not needed for it -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>kafka-log4j-appender</artifactId></exclusion>
        <exclusion><groupId>com.fasterxml.jackson.jaxrs</groupId><artifactId>jackson-jaxrs-json-provider</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>$RELOAD4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$DEP_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

jar_with() {  # jar_with DIR CLASSFILE: the jar in DIR holding CLASSFILE (zip names are stored uncompressed)
    grep -laF "$2" "$1"/*.jar 2>/dev/null | head -n 1
}

first_class() {  # first_class DIR CLASS...: the first CLASS some jar in DIR holds
    local c
    for c in "${@:2}"; do
        if [ -n "$(jar_with "$1" "${c//.//}.class")" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

write_tools_log4j() {  # tools log to stderr, warnings and worse only
    cat >"$CACHE/tools-log4j.properties" <<'EOF'
# generated by deploy/kafka-local.sh: Kafka's command-line tools, warnings and errors to stderr
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
EOF
}

do_fetch() {
    if fetched; then
        need_java
        [ -f "$CACHE/tools-log4j.properties" ] || write_tools_log4j
        return 0
    fi
    need_java mvn
    mkdir -p "$CACHE"
    # One fetch at a time (two test runs may start at once); the second
    # finds the first one's jars.
    exec 9>"$CACHE/fetch.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if fetched; then
        exec 9>&-
        return 0
    fi
    write_pom
    rm -rf "$LIB.tmp"
    say "fetching Apache Kafka $KAFKA_VERSION (kafka_$SCALA_VERSION) from Maven Central into $CACHE" >&2
    local t0=$SECONDS rc=0
    mvn -B -q -Dstyle.color=never -f "$CACHE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB.tmp" \
        >"$CACHE/fetch.log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "kafka-local: downloading Apache Kafka $KAFKA_VERSION from Maven Central failed (mvn exit $rc)" >&2
        echo "kafka-local: the end of $CACHE/fetch.log:" >&2
        tail -n 25 "$CACHE/fetch.log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/  | /' >&2
        echo "kafka-local: check the network (or a proxy/mirror in ~/.m2/settings.xml) and run fetch again" >&2
        rm -rf "$LIB.tmp"
        exit 1
    fi

    # What this version calls its tools (some moved from kafka.* to
    # org.apache.kafka.tools.* between 3.x releases).
    local storage topics producer consumer
    storage=$(first_class "$LIB.tmp" kafka.tools.StorageTool org.apache.kafka.tools.StorageTool) || storage=""
    topics=$(first_class "$LIB.tmp" org.apache.kafka.tools.TopicCommand kafka.admin.TopicCommand) || topics=""
    producer=$(first_class "$LIB.tmp" org.apache.kafka.tools.ConsoleProducer kafka.tools.ConsoleProducer) || producer=""
    consumer=$(first_class "$LIB.tmp" org.apache.kafka.tools.consumer.ConsoleConsumer kafka.tools.ConsoleConsumer) || consumer=""
    if [ -z "$(first_class "$LIB.tmp" kafka.Kafka)" ] || [ -z "$storage" ] || [ -z "$topics" ] || [ -z "$producer" ]; then
        rm -rf "$LIB.tmp"
        die "the jars Maven fetched lack kafka.Kafka, StorageTool, TopicCommand or ConsoleProducer (Kafka $KAFKA_VERSION is not supported)"
    fi
    cat >"$LIB.tmp/kafka.env" <<EOF
KAFKA_VERSION=$KAFKA_VERSION
CLASS_STORAGE=$storage
CLASS_TOPICS=$topics
CLASS_PRODUCER=$producer
CLASS_CONSUMER=$consumer
EOF
    rm -rf "$LIB"
    mv "$LIB.tmp" "$LIB"
    write_tools_log4j
    local size jars=("$LIB"/*.jar)
    size=$(du -sh "$CACHE/m2" | cut -f1)
    rm -rf "$CACHE/m2"   # everything needed is in LIB now
    exec 9>&-
    say "fetched ${#jars[@]} jars ($(du -sh "$LIB" | cut -f1) in $LIB; $size downloaded with Maven's plugins) in $((SECONDS - t0))s" >&2
}

load_classes() {  # sets CLASS_* from LIB/kafka.env
    # shellcheck disable=SC1091
    . "$LIB/kafka.env"
}

# ------------------------------------------------------------- processes
launch() {  # launch NAME CMD...: runs CMD in its own session, appending to DIR/NAME.log
    local name=$1 pid
    shift
    echo "---- kafka-local: $name started $(date '+%F %T')" >>"$DIR/$name.log"
    setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid $(start_time "$pid")" >"$DIR/$name.pid"
}


# ---------------------------------------------------------------- cluster

client_port() { echo $((PORT + 10 * ($1 - 1))); }        # node 1 -> P, 2 -> P+10, 3 -> P+20
controller_port() { echo $((PORT + 10 * ($1 - 1) + 1)); }

load_cluster() {  # sets BROKERS, PORT, CLUSTER_ID from DIR/cluster.env; false when there is none
    [ -f "$DIR/cluster.env" ] || return 1
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
}

need_cluster() {
    load_cluster || die "no cluster in $DIR (start one with: bash deploy/kafka-local.sh start --dir $DIR)"
}

running_nodes() {  # the ids of the nodes that run
    local n
    for ((n = 1; n <= BROKERS; n++)); do
        if [ -n "$(pid_of "node-$n")" ]; then echo "$n"; fi
    done
}

bootstrap_of() {  # bootstrap_of N...: host:port,host:port of those nodes
    local n out=""
    for n in "$@"; do out+="${out:+,}127.0.0.1:$(client_port "$n")"; done
    echo "$out"
}

new_cluster_id() {  # 16 random bytes, base64url without padding, as Kafka's Uuid prints them
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        # a leading '-' would read as an option on the StorageTool command line
        case "$id" in -*) ;; *) echo "$id"; return 0 ;; esac
    done
}

write_configs() {  # server.properties of every node, log4j.properties
    local n voters="" isr=$((BROKERS < 2 ? 1 : 2))
    for ((n = 1; n <= BROKERS; n++)); do voters+="${voters:+,}$n@127.0.0.1:$(controller_port "$n")"; done
    for ((n = 1; n <= BROKERS; n++)); do
        mkdir -p "$DIR/node-$n/data"
        cat >"$DIR/node-$n/server.properties" <<EOF
# generated by deploy/kafka-local.sh start (rewritten on every start)
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DIR/node-$n/data

# topics: only the ones asked for
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=$BROKERS
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$BROKERS
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0

# small and quick: a test machine, not a data centre
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
log.segment.bytes=16777216
log.index.size.max.bytes=1048576
log.retention.ms=3600000
log.retention.bytes=67108864
log.retention.check.interval.ms=60000
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
EOF
    done
    cat >"$DIR/log4j.properties" <<'EOF'
# generated by deploy/kafka-local.sh start: warnings and errors, plus the start/stop lines
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
}

format_storage() {  # formats the storage of the nodes that have none yet (in parallel: a JVM each)
    local n pids=() failed=""
    for ((n = 1; n <= BROKERS; n++)); do
        [ -f "$DIR/node-$n/data/meta.properties" ] && continue
        java "${TOOL_JVM[@]}" -cp "$LIB/*" "$CLASS_STORAGE" format -t "$CLUSTER_ID" \
            -c "$DIR/node-$n/server.properties" >"$DIR/node-$n.format.log" 2>&1 &
        pids+=("$n:$!")
    done
    for n in ${pids[@]+"${pids[@]}"}; do
        wait "${n#*:}" || failed+=" ${n%%:*}"
    done
    if [ -n "$failed" ]; then
        for n in $failed; do
            echo "kafka-local: formatting the storage of node $n failed; $DIR/node-$n.format.log:" >&2
            sed 's/^/  | /' "$DIR/node-$n.format.log" >&2
        done
        exit 1
    fi
}

launch_node() {  # launch_node N
    local n=$1
    launch "node-$n" java "${BROKER_HEAP[@]}" "${BROKER_JVM[@]}" "${JVM_COMMON[@]}" \
        -Dlog4j.configuration="file:$DIR/log4j.properties" -Dkafka.logs.dir="$DIR/node-$n" \
        -cp "$LIB/*" kafka.Kafka "$DIR/node-$n/server.properties"
}

metadata_brokers() {  # metadata_brokers PORT: "ID HOST:PORT" of each broker the node on PORT lists
    port_busy "$1" || return 1
    timeout 10 kcat -L -b "127.0.0.1:$1" -m 3 2>/dev/null |
        sed -n 's/^ *broker \([0-9]*\) at \([^ ]*\).*/\1 \2/p' | sort
}

nodes_agree() {  # nodes_agree N...: every node N lists exactly the nodes N... as its brokers
    local want n
    want=$(for n in "$@"; do echo "$n 127.0.0.1:$(client_port "$n")"; done | sort)
    for n in "$@"; do
        [ "$(metadata_brokers "$(client_port "$n")")" = "$want" ] || return 1
    done
}

stop_watchdog_if_idle() {  # the watchdog goes once no node runs
    if [ -z "$(running_nodes)" ]; then stop_proc watchdog 2; fi
}

fail_start() {  # fail_start N WHAT: the log tail of node N, stop what this command started, exit 1
    local n=$1 what=$2 m
    echo "kafka-local: $what" >&2
    if [ -f "$DIR/node-$n.log" ]; then
        echo "kafka-local: the end of $DIR/node-$n.log:" >&2
        tail -n 30 "$DIR/node-$n.log" | sed 's/^/  | /' >&2
    fi
    for m in "${STARTED[@]}"; do stop_proc "node-$m" 5 >/dev/null 2>&1; done
    stop_watchdog_if_idle
    exit 1
}

wait_nodes() {  # wait_nodes N...: until those nodes run and list each other, or fail
    local i n
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        for n in "$@"; do
            [ -n "$(pid_of "node-$n")" ] || fail_start "$n" "node $n exited while starting"
        done
        if nodes_agree "$@"; then return 0; fi
        sleep 0.2
    done
    fail_start "$1" "nodes $* did not all answer with metadata listing each other within ${READY_TIMEOUT}s"
}

need_kcat() {
    command -v kcat >/dev/null 2>&1 || die "kcat not found (to see when the brokers answer); bash deploy/install-deps.sh installs it"
}

do_start() {
    local n p want_brokers=${OPT_BROKERS:-} want_port=${OPT_PORT:-}
    case "$want_brokers" in ''|1|3) ;; *) die "--brokers must be 1 or 3" ;; esac
    case "$want_port" in ''|*[!0-9]*) [ -z "$want_port" ] || die "--port must be a number" ;; esac
    need_kcat
    command -v setsid >/dev/null 2>&1 || die "setsid not found (util-linux)"
    do_fetch
    load_classes
    mkdir -p "$DIR"

    if load_cluster; then
        if { [ -n "$want_brokers" ] && [ "$want_brokers" != "$BROKERS" ]; } ||
           { [ -n "$want_port" ] && [ "$want_port" != "$PORT" ]; }; then
            die "$DIR holds a $BROKERS-node cluster on port $PORT; stop it and remove $DIR, or use another --dir"
        fi
        local running
        running=$(running_nodes | wc -l)
        if [ "$running" -eq "$BROKERS" ]; then
            say "already running in $DIR" >&2
            echo "BOOTSTRAP $(bootstrap_of $(seq 1 "$BROKERS"))"
            return 0
        fi
        [ "$running" -eq 0 ] || die "partly running (nodes $(running_nodes | tr '\n' ' ')); stop it first, or start-broker N"
    else
        BROKERS=${want_brokers:-1}
        PORT=${want_port:-19092}
        CLUSTER_ID=$(new_cluster_id)
    fi
    [ $((PORT + 10 * (BROKERS - 1) + 1)) -le 65535 ] || die "--port $PORT leaves no room for $BROKERS nodes"
    for ((n = 1; n <= BROKERS; n++)); do
        for p in "$(client_port "$n")" "$(controller_port "$n")"; do
            port_busy "$p" && die "port $p (node $n) is already in use; another cluster? (status, or --port P)"
        done
    done

    write_configs
    format_storage
    printf 'BROKERS=%s\nPORT=%s\nCLUSTER_ID=%s\n' "$BROKERS" "$PORT" "$CLUSTER_ID" >"$DIR/cluster.env"
    if [ -n "${OPT_WATCH:-}" ]; then start_watchdog "$OPT_WATCH"; fi

    STARTED=()
    for ((n = 1; n <= BROKERS; n++)); do
        launch_node "$n"
        STARTED+=("$n")
    done
    wait_nodes $(seq 1 "$BROKERS")
    say "$BROKERS node(s) up in $DIR (logs: $DIR/node-N.log)" >&2
    echo "BOOTSTRAP $(bootstrap_of $(seq 1 "$BROKERS"))"
}

do_start_broker() {
    local n=${ARGS[0]:-} running=()
    need_cluster
    case "$n" in [1-9]) ;; *) die "usage: start-broker N (1..$BROKERS)" ;; esac
    [ "$n" -le "$BROKERS" ] || die "no node $n: the cluster in $DIR has $BROKERS"
    need_kcat
    load_classes
    if [ -n "$(pid_of "node-$n")" ]; then
        say "node $n already runs" >&2
    else
        port_busy "$(client_port "$n")" && die "port $(client_port "$n") (node $n) is already in use"
        write_configs
        format_storage
        STARTED=("$n")
        launch_node "$n"
    fi
    mapfile -t running < <(running_nodes)
    wait_nodes "${running[@]}"
    echo "BOOTSTRAP $(bootstrap_of "${running[@]}")"
}

start_watchdog() {  # start_watchdog PID: stops this cluster when PID exits
    stop_proc watchdog 2
    # shellcheck disable=SC2016  # $1..$3 are the inner shell's
    launch watchdog bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
                             exec bash "$2" stop --dir "$3"' watchdog "$1" "$self" "$DIR"
}

# ------------------------------------------------------------------ stop

stop_procs() {  # stop_procs TIMEOUT NAME...: SIGTERM to all, wait up to TIMEOUT s, then SIGKILL
    local limit=$1 name pid i left
    shift
    local pids=()
    for name in "$@"; do
        pid=$(pid_of "$name")
        if [ -z "$pid" ] || [ "$pid" = "$$" ]; then continue; fi   # the watchdog runs stop as itself
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$name:$pid")
    done
    for ((i = 0; i < limit * 10; i++)); do
        left=0
        for name in ${pids[@]+"${pids[@]}"}; do
            [ -n "$(pid_of "${name%%:*}")" ] && left=1
        done
        [ "$left" -eq 0 ] && break
        sleep 0.1
    done
    for name in ${pids[@]+"${pids[@]}"}; do
        pid=${name#*:}
        name=${name%%:*}
        if [ -n "$(pid_of "$name")" ]; then
            say "$name (pid $pid) still running after ${limit}s; kill -9" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do [ -n "$(pid_of "$name")" ] || break; sleep 0.1; done
        fi
        [ "$name" = watchdog ] || say "stopped $name (pid $pid)" >&2
    done
    for name in "$@"; do
        pid=$(pid_of "$name")
        [ "$pid" = "$$" ] || rm -f "$DIR/$name.pid"
    done
}

stop_proc() { stop_procs "$2" "$1"; }   # stop_proc NAME TIMEOUT

do_stop() {
    if ! load_cluster; then
        say "nothing running (no cluster in $DIR)" >&2
        return 0
    fi
    if [ -n "${OPT_BROKER:-}" ]; then
        case "$OPT_BROKER" in [1-9]) ;; *) die "--broker must be a node id (1..$BROKERS)" ;; esac
        [ "$OPT_BROKER" -le "$BROKERS" ] || die "no node $OPT_BROKER: the cluster in $DIR has $BROKERS"
        stop_proc "node-$OPT_BROKER" "$STOP_TIMEOUT"
        stop_watchdog_if_idle
        return 0
    fi
    local names=() n
    for ((n = 1; n <= BROKERS; n++)); do names+=("node-$n"); done
    if [ -z "$(running_nodes)" ]; then
        say "nothing running in $DIR" >&2
    fi
    # All at once: one by one, the last nodes would wait for a quorum
    # that is already gone.
    stop_procs "$STOP_TIMEOUT" "${names[@]}"
    stop_proc watchdog 2
}

# ---------------------------------------------------------------- status

do_status() {
    local n pid down=0
    if ! load_cluster; then
        say "no cluster in $DIR" >&2
        return 3
    fi
    echo "  cluster $CLUSTER_ID in $DIR ($BROKERS node(s))"
    for ((n = 1; n <= BROKERS; n++)); do
        pid=$(pid_of "node-$n")
        if [ -n "$pid" ]; then
            printf '  node %s  up    pid %-7s 127.0.0.1:%s  controller 127.0.0.1:%s\n' \
                "$n" "$pid" "$(client_port "$n")" "$(controller_port "$n")"
        else
            printf '  node %s  down\n' "$n"
            down=1
        fi
    done
    local running=()
    mapfile -t running < <(running_nodes)
    if [ "${#running[@]}" -gt 0 ]; then
        echo "BOOTSTRAP $(bootstrap_of "${running[@]}")"
    fi
    return "$down"
}

# ----------------------------------------------------------------- topics

topic_ready() {  # topic_ready PORT NAME PARTITIONS: the node on PORT knows NAME with a leader for each partition
    local out
    out=$(timeout 10 kcat -L -b "127.0.0.1:$1" -m 3 -t "$2" 2>/dev/null) || return 1
    grep -q "topic \"$2\" with $3 partitions:" <<<"$out" || return 1
    [ "$(grep -c 'partition [0-9]*, leader [0-9]' <<<"$out")" -eq "$3" ]
}

do_topic() {
    local name=${ARGS[0]:-} parts=${ARGS[1]:-} rf=${ARGS[2]:-1} running=() n i
    if [ -z "$name" ] || [ -z "$parts" ]; then die "usage: topic NAME PARTITIONS [RF]"; fi
    case "$parts$rf" in *[!0-9]*) die "PARTITIONS and RF must be numbers" ;; esac
    need_cluster
    need_kcat
    fetched || die "Kafka is not fetched (bash deploy/kafka-local.sh fetch)"
    load_classes
    mapfile -t running < <(running_nodes)
    [ "${#running[@]}" -gt 0 ] || die "no node of the cluster in $DIR runs"
    java "${TOOL_JVM[@]}" -cp "$LIB/*" "$CLASS_TOPICS" --bootstrap-server "$(bootstrap_of "${running[@]}")" \
        --create --topic "$name" --partitions "$parts" --replication-factor "$rf" >&2 ||
        die "creating topic $name ($parts partitions, replication factor $rf) failed"
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        local ok=1
        for n in "${running[@]}"; do
            topic_ready "$(client_port "$n")" "$name" "$parts" || { ok=0; break; }
        done
        [ "$ok" -eq 1 ] && return 0
        sleep 0.2
    done
    die "topic $name was created but not every node shows $parts partitions with leaders within ${READY_TIMEOUT}s"
}

# ------------------------------------------------------------------ tools

do_tool() {
    local cls=${ARGS[0]:-}
    [ -n "$cls" ] || die "usage: tool CLASS|console-producer|console-consumer|topics|storage [ARGS...]"
    do_fetch
    load_classes
    case "$cls" in
        console-producer) cls=$CLASS_PRODUCER ;;
        console-consumer) cls=$CLASS_CONSUMER ;;
        topics) cls=$CLASS_TOPICS ;;
        storage) cls=$CLASS_STORAGE ;;
    esac
    exec java "${TOOL_JVM[@]}" -cp "$LIB/*" "$cls" "${ARGS[@]:1}"
}

# ------------------------------------------------------------------ main

usage() {  # usage [STATUS]: the command summary at the top of this file
    sed -n '4,17p' "$self" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

CMD=${1:-}
[ -n "$CMD" ] || usage
case "$CMD" in -h|--help|help) usage 0 ;; esac
shift
OPT_DIR="" OPT_BROKERS="" OPT_PORT="" OPT_BROKER="" OPT_WATCH=""
ARGS=()
if [ "$CMD" = tool ]; then
    ARGS=("$@")   # the tool's own options, untouched
else
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) OPT_DIR=${2:?--dir needs a value}; shift 2 ;;
            --brokers) OPT_BROKERS=${2:?--brokers needs a value}; shift 2 ;;
            --port) OPT_PORT=${2:?--port needs a value}; shift 2 ;;
            --broker) OPT_BROKER=${2:?--broker needs a value}; shift 2 ;;
            --watch-pid) OPT_WATCH=${2:?--watch-pid needs a value}; shift 2 ;;
            -h|--help) usage 0 ;;
            -*) die "unknown option $1 (try: bash deploy/kafka-local.sh --help)" ;;
            *) ARGS+=("$1"); shift ;;
        esac
    done
fi
DIR=$(abspath "${OPT_DIR:-$CACHE/run}")
PIDDIR=$DIR
STARTED=()

case "$CMD" in
    fetch) do_fetch ;;
    start) do_start ;;
    start-broker) do_start_broker ;;
    stop) do_stop ;;
    status) do_status || exit 3 ;;
    topic) do_topic ;;
    tool) do_tool ;;
    *) usage ;;
esac
