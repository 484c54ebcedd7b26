"""kafka_real.py -- a real Apache Kafka (deploy/kafka-local.sh) for the integration tests.

The mock cluster (harness.MockKafka) partitions, elects and serves as
librdkafka thinks Kafka does; this is the real broker, from Maven Central,
for the tests that must show subway agrees with it: the Java client's
partitioner, leader changes, what a real broker answers.

    kafka = ApacheKafka(brokers=3)                    # KRaft, temp dir, free ports
    kafka.create_topic("orders", 6, rf=3)
    console_produce(kafka.bootstrap, "orders", [("cust-1", "v1"), ("cust-2", "v2")])
    kafka.stop_broker(2); kafka.leaders("orders"); kafka.start_broker(2)
    kafka.stop()

The first use fetches the broker's jars (deploy/kafka-local.sh fetch, into
.cache/kafka, once per checkout); when that fails the test is skipped with
the reason, which run.py counts as a failure. The nodes are stopped by
stop(), by the test's cleanup (TestCase.addCleanup(kafka.stop)), at exit,
and by the script's watchdog when this process dies without cleaning up.
"""

import atexit
import json
import os
import re
import socket
import unittest

import harness
from harness import REPO, run, tmp_path

SCRIPT = os.path.join(REPO, "deploy", "kafka-local.sh")
START_TIMEOUT = 120.0   # the script's own bound is 60 s per wait; this one covers a slow fetch check too
FETCH_TIMEOUT = 900.0

_fetch_error = None      # why fetch failed, once it has; None before the first try and after success
_fetched = False


def script(*args, timeout=START_TIMEOUT):
    """Runs deploy/kafka-local.sh ARGS; returns the CompletedProcess (text
    stdout/stderr). Raises WaitTimeout when it overruns."""
    return run(["bash", SCRIPT] + [str(a) for a in args], timeout=timeout)


def _failed(what, r):
    return AssertionError("kafka-local.sh %s failed (exit %d)\nstdout: %s\nstderr: %s" % (
        what, r.returncode, r.stdout.strip()[-2000:], r.stderr.strip()[-4000:]))


def ensure_fetched():
    """Fetches the broker's jars once per process (a no-op when they are in
    .cache/kafka); skips the calling test when that fails."""
    global _fetched, _fetch_error
    if _fetched:
        return
    if _fetch_error is None:
        r = script("fetch", timeout=FETCH_TIMEOUT)
        if r.returncode == 0:
            _fetched = True
            return
        _fetch_error = (r.stderr.strip() or r.stdout.strip())[-1500:]
    raise unittest.SkipTest("no Apache Kafka: deploy/kafka-local.sh fetch failed:\n" + _fetch_error)


def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _free_base_port(brokers):
    """A base port P with P+10*i and P+10*i+1 (i < brokers) free and not
    handed out before; all of them are then marked as handed out."""
    offsets = [10 * i + j for i in range(brokers) for j in (0, 1)]
    for _ in range(200):
        base = harness.free_port()
        ports = [base + o for o in offsets]
        if ports[-1] > 65535:
            continue
        if all(p == base or (p not in harness._used_ports and _bindable(p)) for p in ports):
            harness._used_ports.update(ports)
            return base
    raise RuntimeError("no free run of ports for %d Kafka node(s)" % brokers)


class ApacheKafka:
    """brokers (1 or 3) combined broker/controller KRaft nodes started with
    deploy/kafka-local.sh in a directory of the run's temp dir. Node N
    (1-based) serves clients on port + 10*(N-1). Ready when every node
    answers metadata listing all of them. .bootstrap lists every node."""

    def __init__(self, brokers=1, timeout=START_TIMEOUT):
        if brokers not in (1, 3):
            raise ValueError("brokers must be 1 or 3")
        ensure_fetched()
        self.brokers = brokers
        self.dir = tmp_path("kafka")
        self.port = None
        self.running = False
        last = None
        for _ in range(3):   # a port taken between the choice and the bind: choose again
            self.port = _free_base_port(brokers)
            r = script("start", "--brokers", brokers, "--dir", self.dir, "--port", self.port,
                       "--watch-pid", os.getpid(), timeout=timeout)
            if r.returncode == 0:
                break
            last = r
            if "already in use" not in r.stderr:
                raise _failed("start", r)
            script("stop", "--dir", self.dir)
        else:
            raise _failed("start", last)
        self.running = True
        atexit.register(self.stop)
        m = re.search(r"^BOOTSTRAP (\S+)$", r.stdout, re.M)
        if m is None:
            self.stop()
            raise AssertionError("kafka-local.sh start printed no BOOTSTRAP line: %r" % r.stdout)
        self.bootstrap = m.group(1)

    def addr(self, n):
        """"127.0.0.1:PORT" of node n's client listener."""
        return "127.0.0.1:%d" % (self.port + 10 * (n - 1))

    def create_topic(self, name, partitions, rf=1):
        """Creates the topic (TopicCommand) and waits until every running node
        has a leader for each partition."""
        r = script("topic", name, partitions, rf, "--dir", self.dir)
        if r.returncode != 0:
            raise _failed("topic %s %d %d" % (name, partitions, rf), r)

    def stop_broker(self, n):
        """Stops node n (SIGTERM: a controlled shutdown that moves its
        leaderships away; kill -9 after the script's bound)."""
        r = script("stop", "--broker", n, "--dir", self.dir)
        if r.returncode != 0:
            raise _failed("stop --broker %d" % n, r)

    def start_broker(self, n):
        """Starts node n again; returns once every running node lists it."""
        r = script("start-broker", n, "--dir", self.dir)
        if r.returncode != 0:
            raise _failed("start-broker %d" % n, r)

    def running_brokers(self):
        """The ids of the nodes whose process runs."""
        r = script("status", "--dir", self.dir, timeout=30)
        return [int(m.group(1)) for m in re.finditer(r"^\s*node (\d+)\s+up\b", r.stdout, re.M)]

    def metadata(self, topic=None, n=None):
        """kcat -L -J from node n (default: the first running one), parsed."""
        if n is None:
            running = self.running_brokers()
            if not running:
                raise AssertionError("no Kafka node runs")
            n = running[0]
        argv = [harness._kcat(), "-L", "-J", "-b", self.addr(n), "-m", "5"]
        if topic is not None:
            argv += ["-t", topic]
        r = run(argv, timeout=30)
        if r.returncode != 0:
            raise AssertionError("kcat -L from node %d failed: %s" % (n, r.stderr))
        return json.loads(r.stdout)

    def leaders(self, topic, n=None):
        """{partition: leader node id (-1 when none)} as node n sees it."""
        for t in self.metadata(topic, n)["topics"]:
            if t["topic"] == topic:
                if t.get("error"):
                    raise AssertionError("metadata of %s: %s" % (topic, t["error"]))
                return {p["partition"]: p["leader"] for p in t["partitions"]}
        raise AssertionError("no topic %s in the metadata" % topic)

    def wait_leaders(self, topic, pred, timeout=30.0, what=None):
        """Polls leaders(topic) until pred(leaders) is true; returns them."""
        return harness.wait_until(lambda: (lambda l: l if pred(l) else None)(self.leaders(topic)),
                                  timeout, what or "leaders of %s to satisfy a condition" % topic)

    def log(self, n, lines=40):
        """The last lines of node n's log, for failure messages."""
        try:
            with open(os.path.join(self.dir, "node-%d.log" % n), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return "(no log: %s)" % e

    def stop(self):
        """Stops every node (idempotent)."""
        if not self.running:
            return
        self.running = False
        r = script("stop", "--dir", self.dir, timeout=90)
        if r.returncode != 0:
            raise _failed("stop", r)


def console_produce(bootstrap, topic, pairs, sep="\t", timeout=90.0):
    """Produces [(key, value), ...] with Kafka's own Java console producer
    (parse.key=true, key.separator=sep, the Java client's default
    partitioner) and waits until it exits. Keys and values are str or bytes
    (UTF-8) without sep or newlines; every record needs a key."""
    lines = []
    for key, value in pairs:
        if key is None:
            raise ValueError("console_produce needs a key for every record")
        k = key.decode("utf-8") if isinstance(key, bytes) else str(key)
        v = "" if value is None else value.decode("utf-8") if isinstance(value, bytes) else str(value)
        for part in (k, v):
            if sep in part or "\n" in part or "\r" in part:
                raise ValueError("record %r contains the separator or a newline" % ((key, value),))
        lines.append(k + sep + v + "\n")
    # --timeout is the producer's linger.ms (default 1000: a second per
    # batch, a second per record with --sync).
    argv = ["bash", SCRIPT, "tool", "console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
            "--property", "parse.key=true", "--property", "key.separator=" + sep,
            "--producer-property", "acks=all", "--producer-property", "max.block.ms=30000",
            "--timeout", "5"]
    r = run(argv, timeout=timeout, input="".join(lines).encode("utf-8"))
    # A failed send is logged (ERROR) and does not change the exit status.
    if r.returncode != 0 or re.search(r"\bERROR\b", r.stderr):
        raise AssertionError("console producer to %s failed (exit %d): %s" % (topic, r.returncode, r.stderr[-3000:]))
