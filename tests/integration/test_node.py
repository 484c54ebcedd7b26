"""test_node.py -- the node's command line, config file, dev mode, admin HTTP and shutdown."""

import re
import signal
import time

import harness
from harness import (MockKafka, NodeCase, TestCase, class_fixture, crc32_partition, free_port,
                     java_partition, produce, run)
import wire

OPTIONS = ["--listen", "--admin", "--kafka", "--dev", "--config", "--node-id", "--heartbeat-ms",
           "--heartbeat-timeout-ms", "--max-frame", "--max-subs", "--max-conns", "--max-key",
           "--out-soft-limit", "--out-hard-limit", "--slow-timeout-ms", "--linger-ms",
           "--partitioner", "--default-partitioner", "--kafka-opt", "--log-level"]


class CommandLineTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = class_fixture(cls, MockKafka({"cfgc": 6, "cfga": 3, "cfgd": 6, "lt": 1}))

    def test_help_lists_every_option(self):
        r = run([harness.bin_path("subway"), "--help"], timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout + r.stderr
        for opt in OPTIONS:
            self.assertRegex(text, re.escape(opt) + r"\b", "--help does not mention " + opt)

    def test_needs_kafka_or_dev(self):
        r = run([harness.bin_path("subway"), "--listen", "127.0.0.1:%d" % free_port(), "--admin", "off"],
                timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--kafka", r.stderr)
        self.assertIn("--dev", r.stderr)

    def test_unknown_option_fails(self):
        r = run([harness.bin_path("subway"), "--dev", "--no-such-option"], timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--no-such-option", r.stderr)

    def test_logs_listening(self):
        n = self.node(self.kafka.bootstrap)
        n.proc.wait_log(r"^subway\[[^]]+\]: listening on 127\.0\.0\.1:%d$" % n.port, timeout=5)

    def test_admin_off(self):
        port = free_port()
        p = self.proc([harness.bin_path("subway"), "--listen", "127.0.0.1:%d" % port, "--admin", "off",
                       "--kafka", self.kafka.bootstrap], name="subway-admin-off")
        p.wait_log(r"^subway\[[^]]+\]: listening on 127\.0\.0\.1:%d$" % port, timeout=15)
        with wire.RawClient(("127.0.0.1", port)) as c:
            self.assertEqual(c.hello().version, wire.PROTO_VERSION)

    def config_options(self, port, admin):
        return [("listen", "127.0.0.1:%d" % port), ("admin", "127.0.0.1:%d" % admin),
                ("kafka", self.kafka.bootstrap), ("node-id", "cfg-node"), ("heartbeat-ms", "1234"),
                ("max-frame", "8192"), ("max-subs", "1"), ("partitioner", "cfgc=crc32"),
                ("partitioner", "cfga=all"), ("default-partitioner", "murmur2"),
                ("kafka-opt", "client.id=subway-it"), ("log-level", "info"), ("linger-ms", "300")]

    def check_configured(self, node):
        st = node.stats()
        self.assertEqual(st["node_id"], "cfg-node")
        self.assertEqual(st["kafka"], self.kafka.bootstrap)
        c = self.client(node)
        w = c.welcome
        self.assertEqual((w.node_id, w.heartbeat_ms, w.max_frame), ("cfg-node", 1234, 8192))
        s = c.subscribe("cfgc", "kk")
        with self.assertRaises(wire.ServerError) as cm:  # max-subs 1
            c.subscribe("cfga", "kk")
        self.assertEqual(cm.exception.code, wire.E_TOO_MANY_SUBS)
        c2 = self.client(node)
        s2 = c2.subscribe("cfga", "kk")
        c3 = self.client(node)
        s3 = c3.subscribe("cfgd", "kk")
        return (w.node_id, w.heartbeat_ms, w.max_frame, s.partitions, sorted(s2.partitions), s3.partitions)

    def test_config_file_equals_flags(self):
        port, admin = free_port(), free_port()
        path = harness.tmp_path("subway.conf")
        with open(path, "w") as f:
            f.write("# subway test configuration\n\n")
            for name, value in self.config_options(port, admin):
                f.write("%s = %s\n" % (name, value))
                f.write("   # an indented comment\n")
        from_file = self.check_configured(
            self.node(None, ["--config", path], listen_port=port, admin_port=admin, own_flags=False))

        port2, admin2 = free_port(), free_port()
        flags = []
        for name, value in self.config_options(port2, admin2):
            flags += ["--" + name, value]
        from_flags = self.check_configured(
            self.node(None, flags, listen_port=port2, admin_port=admin2, own_flags=False))

        self.assertEqual(from_file, from_flags)
        self.assertEqual(from_file[3], [crc32_partition("kk", 6)])
        self.assertEqual(from_file[4], [0, 1, 2])
        self.assertEqual(from_file[5], [java_partition("kk", 6)])

    def test_dev_mode(self):
        port, admin = free_port(), free_port()
        n = self.node(None, ["--dev"], listen_port=port, admin_port=admin)
        m = n.proc.wait_log(r"^subway\[[^]]+\]: dev: embedded Kafka bootstrap (\S+)$", timeout=5)
        n.proc.wait_log(r"^subway\[[^]]+\]: listening on 127\.0\.0\.1:%d$" % port, timeout=5)
        boot = m.group(1)
        # make run's flow: a producer creates the topic (4 partitions in the mock)
        produce(boot, "demo", [("user-1", "first")])
        c = self.client(n)
        sub = c.subscribe("demo", "user-3")
        self.assertEqual(sub.partitions, [java_partition("user-3", MockKafka.AUTO_CREATE_PARTITIONS)])
        produce(boot, "demo", [("user-3", '{"user":"user-3","seq":1}'), ("user-1", "x")])
        msg = c.messages(1, feed=sub.feed)[0]
        self.assertEqual((msg.key, msg.value), (b"user-3", b'{"user":"user-3","seq":1}'))


class AdminTest(NodeCase):
    TOPICS = {"adm": 2}

    def test_healthz(self):
        status, body = self.n.http_get("/healthz")
        self.assertEqual((status, body.strip()), (200, "ok"))

    def test_stats_shape(self):
        c = self.client(self.n)
        sub = c.subscribe("adm", "k")
        c.subscribe("adm", "*")
        self.produce("adm", [("k", "v")])
        c.messages(2)
        st = self.n.wait_stats(lambda st: st["counters"]["records_out"] >= 2, what="records_out >= 2")
        for k, t in (("node_id", str), ("version", str), ("kafka", str), ("connections", int),
                     ("subscriptions", int), ("feeds", list), ("assigned", list), ("counters", dict)):
            self.assertIsInstance(st[k], t, k)
        self.assertEqual(st["kafka"], self.bootstrap)
        self.assertEqual((st["connections"], st["subscriptions"]), (1, 2))
        for k in ("records_in", "records_out", "dropped", "slow_closed", "heartbeat_closed",
                  "protocol_errors", "conns_accepted", "conns_refused"):
            self.assertIsInstance(st["counters"][k], int, k)
        self.assertGreaterEqual(st["counters"]["records_in"], 1)
        self.assertGreaterEqual(st["counters"]["conns_accepted"], 1)
        f = self.n.feed("adm", "k", st)
        self.assertLessEqual({"topic", "key", "handle", "subscribers", "partitions", "records", "lingering"},
                             set(f))  # more fields are fine
        self.assertEqual((f["handle"], f["subscribers"], f["records"], f["lingering"]), (sub.feed, 1, 1, False))
        self.assertEqual(f["partitions"], [java_partition("k", 2)])
        w = self.n.feed("adm", None, st)
        self.assertEqual(sorted(w["partitions"]), [0, 1])
        self.assertEqual(sorted((a["topic"], a["partition"]) for a in st["assigned"]), [("adm", 0), ("adm", 1)])


class ShutdownTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = class_fixture(cls, MockKafka({"bye": 1}))

    def test_sigterm_goaway_exit_zero(self):
        n = self.node(self.kafka.bootstrap)
        a = self.client(n)
        b = self.client(n)
        a.subscribe("bye", "*")
        b.subscribe("bye", "k")
        n.proc.signal(signal.SIGTERM)
        for c in (a, b):
            g = c.expect(wire.GOAWAY, timeout=5)
            self.assertIsInstance(g.text, str)
        self.assertEqual(n.proc.wait_exit(10), 0, n.proc.tail())
        for c in (a, b):
            c.expect_closed(5)

    def test_drain_answers_everyone(self):
        """While a node drains, a SUBSCRIBE sent after GOAWAY gets ERROR
        SHUTTING_DOWN (not silence), a new connection gets the same at once
        (not a hang without WELCOME), and a client that does not hang up is
        closed after the grace: the node exits well within the drain."""
        n = self.node(self.kafka.bootstrap, ["--drain-timeout-ms", 8000])
        a = self.client(n)
        a.subscribe("bye", "*")
        n.proc.signal(signal.SIGTERM)
        a.expect(wire.GOAWAY, timeout=5)
        a.send(wire.SUBSCRIBE, 77, "bye", b"late")
        err = a.expect(wire.ERROR, timeout=5)
        self.assertEqual((err.req_id, err.code), (77, wire.E_SHUTTING_DOWN))
        late = self.raw_client(n)
        e = late.expect(wire.ERROR, timeout=5)
        self.assertEqual((e.req_id, e.code), (0, wire.E_SHUTTING_DOWN))
        late.expect_closed(5)
        a.expect_closed(5)            # it did not hang up: closed after the grace
        self.assertEqual(n.proc.wait_exit(5), 0, n.proc.tail())

    def test_goaway_grace_is_an_option(self):
        """--goaway-grace-ms 4000: a request 2 s after GOAWAY (past the
        default grace of 1 s) is still answered SHUTTING_DOWN."""
        n = self.node(self.kafka.bootstrap, ["--drain-timeout-ms", 8000, "--goaway-grace-ms", 4000])
        a = self.client(n)
        a.subscribe("bye", "*")
        n.proc.signal(signal.SIGTERM)
        a.expect(wire.GOAWAY, timeout=5)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:     # past the default grace, answering PINGs
            self.assertEqual(a.ping(int((time.monotonic() - t0) * 1000) + 1).type, wire.PONG)
            time.sleep(0.25)
        a.send(wire.SUBSCRIBE, 78, "bye", b"later")
        err = a.expect(wire.ERROR, timeout=5)
        self.assertEqual((err.req_id, err.code), (78, wire.E_SHUTTING_DOWN))
        a.expect_closed(5)
        self.assertEqual(n.proc.wait_exit(8), 0, n.proc.tail())
