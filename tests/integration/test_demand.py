"""test_demand.py -- demand events: a feed's cluster-wide count going 0 -> 1 and back to 0 is announced, and the
example upstream producer (deploy/examples/demand-producer.py) fills a topic only while it is demanded.
"""

import json
import os
import socket
import sys
import threading

import harness
from harness import TestCase, class_fixture, consume, free_port, run, wait_until
from kafka_real import ApacheKafka
import wire
from wire import MESSAGE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "deploy", "examples", "demand-producer.py")


class DemandListener:
    """Collects JSON events from the subway:demand channel (raw RESP)."""

    def __init__(self, port):
        self.events = []
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$13\r\nsubway:demand\r\n")
        self.f = self.sock.makefile("rb")
        self._read()                      # the subscribe confirmation
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _read(self):
        line = self.f.readline()
        if line[:1] == b"*":
            return [self._read() for _ in range(int(line[1:-2]))]
        if line[:1] == b"$":
            data = self.f.read(int(line[1:-2]) + 2)
            return data[:-2]
        return line[1:-2]

    def _loop(self):
        try:
            while True:
                msg = self._read()
                if isinstance(msg, list) and msg and msg[0] == b"message":
                    self.events.append(json.loads(msg[2]))
        except (OSError, ValueError):
            return

    def of(self, feed):
        return [e["event"] for e in self.events if e["feed"] == feed]

    def close(self):
        self.sock.close()


class DemandTest(TestCase):
    def test_events_once_per_cluster_transition(self):
        """Two nodes, two subscribers: one 'demand' at the first, one
        'release' at the last, none in between."""
        c = self.cluster({"search.cats": 2}, nodes=2, node_args=["--linger-ms", "200"], haproxy=False)
        ev = DemandListener(c.redis.port)
        self.addCleanup(ev.close)
        a = self.client(c.nodes[0])
        b = self.client(c.nodes[1])
        fa = a.subscribe("search.cats", b"tabby")
        wait_until(lambda: ev.of("search.cats/tabby") == ["demand"], 5, "one demand event")
        fb = b.subscribe("search.cats", b"tabby")
        a.unsubscribe(fa.feed)
        b.unsubscribe(fb.feed)
        wait_until(lambda: ev.of("search.cats/tabby") == ["demand", "release"], 5, "demand then release")
        e = [x for x in ev.events if x["feed"] == "search.cats/tabby"][0]
        self.assertEqual((e["topic"], e["key"]), ("search.cats", "tabby"))
        # the every-key feed carries key null
        w = a.subscribe("search.cats", None)
        wait_until(lambda: ev.of("search.cats/*") == ["demand"], 5, "demand for the every-key feed")
        self.assertIsNone([x for x in ev.events if x["feed"] == "search.cats/*"][0]["key"])
        a.unsubscribe(w.feed)

    def test_example_producer_follows_demand(self):
        """The example producer follows the node's --demand-topic through
        subway and publishes through subway while the feed is demanded."""
        c = self.cluster({"search.dogs": 3, "search.cats": 1, "subway.demand": 1}, nodes=1, haproxy=False,
                         node_args=["--linger-ms", "100", "--demand-topic", "subway.demand"])
        cl = self.client(c.nodes[0])
        # Before the producer starts: one feed demanded, one demanded and
        # released, one outside its glob. It replays the events to find them.
        early = cl.subscribe("search.dogs", b"early")
        cl.unsubscribe(cl.subscribe("search.dogs", b"gone").feed)
        cl.subscribe("search.cats", b"x")
        wait_until(lambda: len(consume(c.kafka.bootstrap, "subway.demand")) == 4, 10, "4 events in subway.demand")
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "proto", "python"))
        prod = self.proc([sys.executable, EXAMPLE, "--subway", c.nodes[0].addr_str, "--topics", "search.dogs",
                          "--interval", "0.05"], name="demand-producer", env=env)
        prod.wait_log("ready", stream="stdout")
        self.assertEqual(prod.stdout().splitlines(), ["producing search.dogs/early", "ready"])
        self.assertEqual(cl.messages(1, timeout=10, feed=early.feed)[0].key, b"early")
        sub = cl.subscribe("search.dogs", b"beagle")
        prod.wait_log("producing search.dogs/beagle", stream="stdout")
        got = cl.messages(3, timeout=10, feed=sub.feed)       # records appear because of the demand
        self.assertTrue(all(m.key == b"beagle" for m in got))
        self.assertEqual([json.loads(m.value)["seq"] for m in got], [1, 2, 3])
        self.assertIn("dogs", json.loads(got[0].value)["text"])
        cl.unsubscribe(sub.feed)
        cl.unsubscribe(early.feed)
        prod.wait_log("stopped search.dogs/beagle", stream="stdout")
        prod.wait_log("stopped search.dogs/early", stream="stdout")
        # once stopped, the topic stops growing
        n1 = len(consume(c.kafka.bootstrap, "search.dogs"))
        n2 = len(consume(c.kafka.bootstrap, "search.dogs"))
        self.assertEqual(n1, n2)
        self.assertGreaterEqual(n1, 3)


class DemandTopicCheckTest(TestCase):
    """--demand-topic names a Kafka topic the node writes events to: one
    that does not exist stops the node at start with a clear message (its
    events would otherwise be dropped one by one, unseen). On Apache Kafka:
    the mock creates any topic a client asks about."""

    @classmethod
    def setUpClass(cls):
        cls.kafka = class_fixture(cls, ApacheKafka(brokers=1))
        cls.kafka.create_topic("orders", 2)
        cls.kafka.create_topic("subway.demand", 1)

    def test_missing_topic_stops_the_node_at_start(self):
        r = run([harness.bin_path("subway"), "--listen", "127.0.0.1:%d" % free_port(), "--admin", "off",
                 "--kafka", self.kafka.bootstrap, "--demand-topic", "no.such.demand"], timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("subway: --demand-topic no.such.demand: Kafka (%s) has no such topic; create it first"
                      % self.kafka.bootstrap, r.stderr)
        self.assertNotIn("no.such.demand", json.dumps(self.kafka.metadata()))

    def test_existing_topic_starts_and_gets_events(self):
        n = self.node(self.kafka.bootstrap, ["--demand-topic", "subway.demand", "--linger-ms", "100"])
        self.assertNotIn("demand-topic", n.proc.stderr())
        c = self.client(n)
        c.subscribe("orders", b"cust-1")
        wait_until(lambda: any(r["key"] == "orders/cust-1" and '"demand"' in (r["value"] or "")
                               for r in consume(self.kafka.bootstrap, "subway.demand")),
                   20, "the demand event in subway.demand")
