"""test_resume.py -- clients that stay subscribed across node deaths and restarts: they reconnect through HAProxy and resume from their positions.

A Resumer is the smallest client that does what PROTOCOL.md 5.8 asks of
one: it remembers, per partition, the offset after the last record it got
(and LIVE's positions for the others), and after any loss of its connection
it reconnects through the load balancer and subscribes again from there.
The tests kill nodes under a steady stream of records and check, against
what Kafka holds, that each client got every record of its feed once.
"""

import random
import subprocess
import threading
import time

import harness
from harness import TestCase, consume, wait_until
import wire

CLUSTER_ARGS = ["--lease-ms", "1000", "--node-ttl-ms", "1000", "--reap-interval-ms", "250", "--linger-ms", "500",
                "--drain-timeout-ms", "1000"]


class Resumer:
    """topic/key through the cluster's HAProxy, resumed after every loss."""

    def __init__(self, cluster, topic, key):
        self.cl = cluster
        self.topic, self.key = topic, key
        self.positions = {}       # partition -> next offset
        self.first = None         # positions at the first LIVE: where "every record" starts
        self.records = []         # (partition, offset, value)
        self.dropped = 0
        self.connects = 0
        self.nodes = []           # the node of each connection
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resumer-%s/%s" % (topic, key), daemon=True)
        self._thread.start()

    def _connect(self):
        delay = 0.05
        if self.connects:
            # A real client backs off with jitter before it reconnects
            # (libsubway: 100 ms and up): records flow on meanwhile.
            self._stop.wait(0.1 + random.random() * 0.1)
        while not self._stop.is_set():
            c = None
            try:
                c = self.cl.client()
                start = ("positions", dict(self.positions)) if self.positions else None
                sub = c.subscribe(self.topic, self.key, start=start, timeout=5)
                self.connects += 1
                self.nodes.append(c.welcome.node_id)
                if sub.live is not None:
                    self._live(sub.live)
                return c, sub.feed
            except (OSError, ConnectionError, TimeoutError, wire.ServerError, wire.ProtocolViolation) as e:
                self.errors.append(repr(e))
                if c is not None:
                    c.close()
                time.sleep(delay)     # back off before the next try
                delay = min(delay * 2, 1.0)
        return None, None

    def _live(self, f):
        pos = f.position_map()
        if self.first is None:
            self.first = dict(pos)
        for p, at in pos.items():
            if at > self.positions.get(p, -1):
                self.positions[p] = at

    def _run(self):
        c, feed = self._connect()
        while not self._stop.is_set() and c is not None:
            try:
                f = c.read_frame(timeout=0.5)
            except TimeoutError:
                continue
            except (OSError, ConnectionError, wire.ProtocolViolation):
                f = None
            if f is not None and f.type == wire.MESSAGE and f.feed == feed:
                self.records.append((f.partition, f.offset, f.value))
                self.positions[f.partition] = f.offset + 1
            elif f is not None and f.type == wire.LIVE and f.feed == feed:
                self._live(f)
            elif f is not None and f.type == wire.DROPPED and f.feed == feed:
                self.dropped += f.count
            elif f is None or f.type == wire.GOAWAY:
                c.close()
                c, feed = self._connect()
        if c is not None:
            c.close()

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def check(self, test, kafka):
        """Every record of the feed Kafka holds from the first LIVE on, each
        once, each partition in offset order, and no DROPPED."""
        test.assertIsNotNone(self.first, "never live: %s" % self.errors[-5:])
        want = {}
        for r in kafka:
            if r["offset"] < self.first.get(r["partition"], 0):
                continue
            if self.key not in (None, "*") and r["key"] != self.key:
                continue
            want.setdefault(r["partition"], []).append(r["offset"])
        got = {}
        for p, o, _ in self.records:
            got.setdefault(p, []).append(o)
        for p in want:
            want[p].sort()
        test.assertEqual(got, want, "%s/%s over %d connections (%s)" % (self.topic, self.key, self.connects,
                                                                          self.nodes))
        test.assertEqual(self.dropped, 0)


class Producer:
    """One kcat process writing records straight to Kafka at a steady
    rate (about RATE a second) until stopped."""

    RATE = 1000

    def __init__(self, bootstrap, topic, keys):
        self.keys = keys
        self.sent = 0
        self.proc = subprocess.Popen(
            [harness._kcat(), "-P", "-b", bootstrap, "-t", topic, "-K", "\\x1f", "-D", "\\x1e",
             "-X", "linger.ms=2", "-X", "partitioner=murmur2_random"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - t0) * self.RATE)
            while self.sent < due:
                k = self.keys[self.sent % len(self.keys)]
                self.proc.stdin.write(("%s\x1fr%d\x1e" % (k, self.sent)).encode())
                self.sent += 1
            self.proc.stdin.flush()
            self._stop.wait(0.005)   # pacing: a steady stream, not a flood

    def stop(self):
        """Stops writing and waits until kcat delivered everything."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(10)
        self.proc.stdin.close()
        if self.proc.wait(60) != 0:
            raise AssertionError("kcat failed: %s" % self.proc.stderr.read()[-2000:])


class ResumeTest(TestCase):
    FEEDS = [("orders", "c1"), ("orders", "c2"), ("orders", "*")]

    def start(self):
        cl = self.cluster({"orders": 4}, nodes=3, node_args=CLUSTER_ARGS)
        resumers = [Resumer(cl, t, k) for t, k in self.FEEDS for _ in range(3)]
        for r in resumers:
            self.addCleanup(r.stop)
        wait_until(lambda: all(r.first is not None for r in resumers), 30, "every client live")
        prod = Producer(cl.kafka.bootstrap, "orders", ["c1", "c2", "c3", "c4"])
        self.addCleanup(prod.stop)
        self.wait_flowing(resumers)
        return cl, resumers, prod

    def wait_flowing(self, resumers, timeout=30):
        """Until every client got records after this point."""
        marks = [len(r.records) for r in resumers]
        wait_until(lambda: all(len(r.records) > m for r, m in zip(resumers, marks)), timeout,
                   "records flowing to every client")

    def finish(self, cl, resumers, prod):
        prod.stop()
        kafka = consume(cl.kafka.bootstrap, "orders")
        total = {}
        for r in resumers:
            want = sum(1 for x in kafka if x["offset"] >= r.first.get(x["partition"], 0)
                       and (r.key == "*" or x["key"] == r.key))
            total[id(r)] = want
        try:
            wait_until(lambda: all(len(r.records) >= total[id(r)] for r in resumers), 60,
                       "every client caught up with Kafka")
        finally:
            for r in resumers:
                r.stop()
        for r in resumers:
            r.check(self, kafka)

    def node_of_clients(self, cl, resumers, exclude=()):
        """A live node some clients are connected to now."""
        for r in resumers:
            if r.nodes and r.nodes[-1] not in exclude and cl.node(r.nodes[-1]).proc.alive():
                return r.nodes[-1]
        raise AssertionError("no node holds clients")

    def kill9_and_back(self, cl, resumers, node_id):
        """kill -9 of node_id; its clients come back elsewhere and records
        flow to every client again; then it starts again."""
        before = sum(r.connects for r in resumers)
        cl.node(node_id).kill9()
        wait_until(lambda: sum(r.connects for r in resumers) > before, 30, "clients of %s back" % node_id)
        self.wait_flowing(resumers)
        cl.node(node_id).start()
        cl.wait_registered(node_id)

    def test_kill9_of_the_owner_then_of_a_relay(self):
        """kill -9 of the node owning the feeds, then of another node that
        holds clients, while records flow: every client reconnects through
        HAProxy, resumes from its positions, and misses nothing."""
        cl, resumers, prod = self.start()
        owner = cl.owner("orders", "c1")
        self.kill9_and_back(cl, resumers, owner)
        relay = self.node_of_clients(cl, resumers, exclude=(cl.owner("orders", "c1"),))
        self.kill9_and_back(cl, resumers, relay)
        self.finish(cl, resumers, prod)
        self.assertGreater(sum(r.connects for r in resumers), len(resumers), "some clients reconnected")

    def test_rolling_restart(self):
        """Each node in turn drains (SIGTERM: GOAWAY) and starts again, under
        load: no client misses a record."""
        cl, resumers, prod = self.start()
        for n in cl.nodes:
            n.stop()
            self.wait_flowing(resumers)
            n.start()
            cl.wait_registered(n.node_id)
            cl.haproxy.wait_servers([n.node_id])
        self.finish(cl, resumers, prod)
        self.assertGreater(sum(r.connects for r in resumers), len(resumers), "some clients reconnected")

    def test_cli_sub_resumes_across_a_kill9(self):
        """subway-cli sub through HAProxy, its node killed under load: it
        reconnects by itself and prints every record of its feed once."""
        cl = self.cluster({"orders": 4}, nodes=3, node_args=CLUSTER_ARGS)
        p = self.proc(harness.cli_argv(cl.haproxy.addr_str, "sub", "-v", "-f", "%p %o\\n", "orders", "c1"),
                      name="subway-cli-sub")
        p.wait_log(r"^subscribed orders/c1 ", timeout=15)
        conns = lambda: {n.node_id: n.stats()["connections"] for n in cl.live_nodes()}
        wait_until(lambda: sum(conns().values()) == 1, 15, "the CLI's connection counted")
        held = [nid for nid, k in conns().items() if k == 1][0]
        prod = Producer(cl.kafka.bootstrap, "orders", ["c1", "c2"])
        self.addCleanup(prod.stop)
        wait_until(lambda: p.stdout().count("\n") >= 50, 30, "records printed")
        cl.node(held).kill9()
        p.wait_log(r"reconnect", timeout=30)
        printed = p.stdout().count("\n")
        wait_until(lambda: p.stdout().count("\n") > printed + 50, 30, "records printed after the reconnect")
        prod.stop()
        want = sorted((r["partition"], r["offset"]) for r in consume(cl.kafka.bootstrap, "orders")
                      if r["key"] == "c1")
        wait_until(lambda: p.stdout().count("\n") >= len(want), 30, "every record printed")
        got = [tuple(int(x) for x in line.split()) for line in p.stdout().splitlines()]
        self.assertEqual(got, want, p.tail())
