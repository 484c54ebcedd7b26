"""test_cluster_harness.py -- checks the cluster parts of the harness: Redis, node kill -9 and restart.

They need no Redis-coordinated node, so they tell a broken harness apart from
a broken cluster (test_cluster.py). HAProxy and deploy/haproxy.cfg are
checked in test_deploy.py.
"""

import harness
from harness import TestCase, feed_key, feed_name, node_key, redis_call, wait_until
import wire


# The sanitizer pass of make test leaves these to the plain pass (run.py --after-plain).
PLAIN_ONLY = 'the test harness itself'


class RedisHarnessTest(TestCase):
    def test_call_cli_and_types(self):
        r = self.redis()
        self.assertEqual(r.call("PING"), "PONG")
        self.assertEqual(r.call("SET", "a", "1"), "OK")
        self.assertEqual(r.call("INCRBY", "a", 4), 5)
        self.assertIsNone(r.call("GET", "missing"))
        self.assertEqual(r.call("HSET", "h", "n1", "2", "n2", "1"), 2)
        self.assertEqual(r.hgetall("h"), {"n1": "2", "n2": "1"})
        self.assertEqual(r.hgetall("nothing"), {})
        r.call("SADD", "s", "x", "y")
        self.assertEqual(r.smembers("s"), {"x", "y"})
        self.assertEqual(r.scan("*"), {"a", "h", "s"})
        with self.assertRaises(harness.RedisError):
            r.call("INCR", "h")  # WRONGTYPE
        # redis-cli sees the same server; output stripped
        self.assertEqual(r.cli("GET", "a"), "5")
        self.assertEqual(r.cli("GET", "missing"), "")
        self.assertEqual(r.cli("SET", "b", "with space"), "OK")
        self.assertEqual(r.call("GET", "b"), "with space")
        # no persistence configured
        self.assertEqual(r.call("CONFIG", "GET", "save"), ["save", ""])
        self.assertEqual(r.call("CONFIG", "GET", "appendonly"), ["appendonly", "no"])
        self.assertEqual(r.call("CONFIG", "GET", "bind")[1], "127.0.0.1")

    def test_restart_empty_and_keep_data(self):
        r = self.redis()
        port, pid = r.port, r.proc.pid
        r.call("SET", "k", "v")
        r.restart()
        self.assertEqual(r.port, port)
        self.assertNotEqual(r.proc.pid, pid)
        self.assertEqual(r.call("DBSIZE"), 0)
        r.call("SET", "k", "v2")
        r.restart(keep_data=True)
        self.assertEqual(r.call("GET", "k"), "v2")

    def test_kill9_then_start(self):
        r = self.redis()
        r.kill9()
        self.assertFalse(r.alive())
        with self.assertRaises(OSError):
            redis_call(r.port, "PING", timeout=1)
        r.start()
        self.assertEqual(r.call("PING"), "PONG")

    def test_schema_names(self):
        self.assertEqual(feed_name("orders", "cust-1"), "orders/cust-1")
        self.assertEqual(feed_name("orders", None), "orders/*")
        self.assertEqual(feed_key("orders", "cust-1", "count"), "subway:feed:{orders/cust-1}:count")
        self.assertEqual(feed_key("demo", None, "nodes"), "subway:feed:{demo/*}:nodes")
        self.assertEqual(node_key("n1"), "subway:node:n1")
        self.assertEqual(node_key("n1", "feeds"), "subway:node:n1:feeds")


class NodeRestartTest(TestCase):
    def test_kill9_and_start_same_ports(self):
        kafka = self.mock_kafka({"kr": 2})
        n = self.node(kafka.bootstrap, ["--node-id", "restart-me"])
        c = n.client()
        c.subscribe("kr", "a")
        port, admin, pid = n.port, n.admin_port, n.proc.pid
        n.kill9()
        self.assertFalse(n.proc.alive())
        with self.assertRaises(wire.ConnectionClosed):
            c.read_frame(5)
        c.close()
        n.start()
        self.assertNotEqual(n.proc.pid, pid)
        self.assertEqual((n.port, n.admin_port), (port, admin))
        s = n.stats()
        self.assertEqual((s["node_id"], s["subscriptions"]), ("restart-me", 0))
        c2 = self.client(n)
        self.assertEqual(c2.welcome.node_id, "restart-me")
        c2.subscribe("kr", "a")
        harness.produce(kafka.bootstrap, "kr", [("a", "after restart")])
        self.assertEqual(c2.messages(1)[0].value, b"after restart")
        # stop() after a restart checks the new process as usual

    def test_stop_after_kill9_is_quiet(self):
        kafka = self.mock_kafka({"kq": 1})
        n = self.node(kafka.bootstrap)
        n.kill9()
        self.assertEqual(n.stop(), -9)   # no stop_checked failure for a crash we caused
        with self.assertRaises(AssertionError):
            n2 = harness.Node(kafka.bootstrap)
            self.addCleanup(n2.stop)
            n2.start()                   # still running: refused


class ClusterPartsTest(TestCase):
    """Cluster() itself needs --redis nodes (test_cluster.py); its failure
    path must still leave nothing running."""

    def test_failed_cluster_start_stops_everything(self):
        before = set(id(p) for p in harness.alive_procs())
        try:
            harness.Cluster({"x": 1}, nodes=2, node_args=["--no-such-option"])
        except (AssertionError, harness.ProcExited) as e:
            self.assertIn("no-such-option", str(e))
        else:
            self.fail("nodes started with an unknown option")
        wait_until(lambda: not [p for p in harness.alive_procs() if id(p) not in before], 10,
                   "every process the failed Cluster started to be stopped")
