"""test_harness.py -- checks the test harness itself: partitioners, msgpack, mock_kafka, kcat.

These need no subway node, only bin/tests/mock_kafka and kcat, so they tell a
broken harness apart from a broken node.
"""

import os
import re
import signal
import socket
import threading

import harness
from harness import (MockKafka, TestCase, class_fixture, consume, crc32_partition,
                     java_partition, murmur2, produce, topic_partitions, wait_until)
import wire


# The sanitizer pass of make test leaves these to the plain pass (run.py --after-plain).
PLAIN_ONLY = 'the test harness itself'


class PartitionerTest(TestCase):
    # Kafka's own test vectors (UtilsTest.testMurmur2 in the Java client).
    MURMUR2 = [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ]

    def test_murmur2_known_values(self):
        for key, want in self.MURMUR2:
            with self.subTest(key=key):
                self.assertEqual(murmur2(key), want)

    def test_java_partition(self):
        # toPositive(murmur2) % n, by hand from the vectors above
        self.assertEqual(java_partition(b"21", 6), (-973932308 & 0x7FFFFFFF) % 6)
        self.assertEqual(java_partition("abc", 7), 479470107 % 7)
        self.assertEqual(java_partition(b"foobar", 1), 0)
        for key, _ in self.MURMUR2:
            self.assertIn(java_partition(key, 6), range(6))

    def test_crc32_partition(self):
        # zlib CRC-32 check value of "123456789" is 0xCBF43926
        self.assertEqual(crc32_partition(b"123456789", 1 << 32), 0xCBF43926)
        self.assertEqual(crc32_partition("123456789", 6), 0xCBF43926 % 6)


class MsgpackTest(TestCase):
    SMALLEST = [
        (None, b"\xc0"), (False, b"\xc2"), (True, b"\xc3"),
        (0, b"\x00"), (127, b"\x7f"), (128, b"\xcc\x80"), (255, b"\xcc\xff"),
        (256, b"\xcd\x01\x00"), (65536, b"\xce\x00\x01\x00\x00"),
        (1 << 32, b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"),
        (-1, b"\xff"), (-32, b"\xe0"), (-33, b"\xd0\xdf"), (-129, b"\xd1\xff\x7f"),
        (-(1 << 31), b"\xd2\x80\x00\x00\x00"),
        ("", b"\xa0"), ("abc", b"\xa3abc"), ("x" * 31, b"\xbf" + b"x" * 31),
        ("x" * 32, b"\xd9\x20" + b"x" * 32), ("x" * 256, b"\xda\x01\x00" + b"x" * 256),
        (b"", b"\xc4\x00"), (b"\x00\xff", b"\xc4\x02\x00\xff"),
        (b"y" * 256, b"\xc5\x01\x00" + b"y" * 256),
        ([], b"\x90"), ([1, [2]], b"\x92\x01\x91\x02"),
        (list(range(16)), b"\xdc\x00\x10" + bytes(range(16))),
        ({}, b"\x80"), ({"a": None}, b"\x81\xa1a\xc0"),
    ]

    def test_encode_smallest(self):
        for value, want in self.SMALLEST:
            with self.subTest(value=value if not isinstance(value, (str, bytes)) or len(value) < 8 else len(value)):
                self.assertEqual(wire.packb(value), want)

    def test_roundtrip(self):
        for value, enc in self.SMALLEST:
            self.assertEqual(wire.unpackb(enc), value)
        # wider encodings than necessary decode too
        self.assertEqual(wire.unpackb(b"\xcf\x00\x00\x00\x00\x00\x00\x00\x05"), 5)
        self.assertEqual(wire.unpackb(b"\xd9\x01a"), "a")
        self.assertEqual(wire.unpackb(b"\xc6\x00\x00\x00\x01z"), b"z")
        self.assertEqual(wire.unpackb(b"\xdd\x00\x00\x00\x01\xc0"), [None])

    def test_decode_rejects(self):
        for bad in (b"", b"\xc1", b"\x92\x01", b"\xa3ab", b"\xcd\x01", b"\x01\x02",
                    b"\xc4\x05abc", b"\x91" * 100 + b"\x00"):
            with self.subTest(bad=bad[:8]):
                with self.assertRaises(wire.MsgpackError):
                    wire.unpackb(bad)

    def test_frame(self):
        self.assertEqual(wire.encode(wire.PING, 7), b"\x00\x00\x00\x03\x92\x0a\x07")
        f = wire.Frame(wire.unpackb(wire.packb([wire.ERROR, 3, 9, "bad topic"])))
        self.assertEqual((f.type, f.req_id, f.code, f.text), (wire.ERROR, 3, 9, "bad topic"))
        self.assertIn("INVALID_ARG", repr(f))

    def test_constants_match_proto_h(self):
        """wire.py's frame types and error codes are proto.h's."""
        with open(os.path.join(harness.REPO, "proto", "proto.h")) as f:
            h = f.read()
        def enum(name, prefix):
            body = re.search(r"typedef enum %s \{(.*?)\}" % name, h, re.S).group(1)
            return {m.group(1): int(m.group(2))
                    for m in re.finditer(r"\b%s([A-Z_]+) = (\d+)," % prefix, body)}

        types = enum("proto_type", "PROTO_")
        errs = enum("proto_err", "PROTO_E_")
        self.assertEqual(types, {v: k for k, v in wire.TYPE_NAMES.items()})
        self.assertEqual(errs, {v: k for k, v in wire.ERR_NAMES.items()})
        self.assertEqual(int(re.search(r"#define PROTO_VERSION (\d+)", h).group(1)), wire.PROTO_VERSION)


class MockKafkaTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = class_fixture(cls, MockKafka({"h6": 6, "h1": 1, "hc6": 6, "hbig": 1}))

    def test_bootstrap_on_stdout(self):
        m = re.search(r"^BOOTSTRAP (\S+)$", self.kafka.proc.stdout(), re.M)
        self.assertIsNotNone(m)
        self.assertEqual(m.group(1), self.kafka.bootstrap)
        self.assertRegex(self.kafka.bootstrap, r"^127\.0\.0\.1:\d+$")

    def test_topics_and_auto_create(self):
        parts = topic_partitions(self.kafka.bootstrap)
        self.assertEqual(parts.get("h6"), 6)
        self.assertEqual(parts.get("h1"), 1)
        self.assertNotIn("h-auto", parts)
        produce(self.kafka.bootstrap, "h-auto", [("a", "1")])
        self.assertEqual(topic_partitions(self.kafka.bootstrap).get("h-auto"),
                         MockKafka.AUTO_CREATE_PARTITIONS)

    def test_murmur2_random_matches_java_partition(self):
        recs = [("k%d" % i, "v%d" % i) for i in range(40)] + [(k.decode(), "vec") for k, _ in PartitionerTest.MURMUR2]
        produce(self.kafka.bootstrap, "h6", recs, partitioner="murmur2_random")
        got = consume(self.kafka.bootstrap, "h6")
        self.assertEqual(len(got), len(recs))
        for r in got:
            self.assertEqual(r["partition"], java_partition(r["key"], 6), r)
        # per partition, offsets are 0.. in produce order
        for p in range(6):
            mine = [r for r in got if r["partition"] == p]
            self.assertEqual([r["offset"] for r in mine], list(range(len(mine))))
            want = [v for k, v in recs if java_partition(k, 6) == p]
            self.assertEqual([r["value"] for r in mine], want)

    def test_default_partitioner_is_crc32(self):
        recs = [("c%d" % i, "v") for i in range(40)]
        produce(self.kafka.bootstrap, "hc6", recs, partitioner=None)
        got = consume(self.kafka.bootstrap, "hc6")
        self.assertEqual(len(got), 40)
        for r in got:
            self.assertEqual(r["partition"], crc32_partition(r["key"], 6), r)

    def test_null_key_large_values_explicit_partition(self):
        big = "x" * 300000
        produce(self.kafka.bootstrap, "hbig", [(None, "nokey"), ("", "emptykey")] + [("b", big)] * 5,
                partition=0)
        got = consume(self.kafka.bootstrap, "hbig")
        self.assertEqual([(r["key"], len(r["value"])) for r in got],
                         [(None, 5), ("", 8)] + [("b", 300000)] * 5)
        one = consume(self.kafka.bootstrap, "hbig", partition=0, offset=1, count=1)
        self.assertEqual(one[0]["value"], "emptykey")

    def test_sigterm_exits_zero_and_ready_file(self):
        k = self.mock_kafka({"x": 2}, brokers=3)
        self.assertEqual(len(k.bootstrap.split(",")), 3)
        self.assertEqual(topic_partitions(k.bootstrap).get("x"), 2)
        k.proc.signal(signal.SIGTERM)
        self.assertEqual(k.proc.wait_exit(10), 0)

    def test_bad_options(self):
        for args in (["--topic", "nopartitions"], ["--topic", "t:0"], ["--brokers", "0"], ["extra"]):
            with self.subTest(args=args):
                r = harness.run([harness.bin_path("tests/mock_kafka")] + args, timeout=10)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("mock_kafka:", r.stderr)


class ProcTest(TestCase):
    def test_stop_kills_process_group(self):
        pidfile = harness.tmp_path("child.pid")
        p = self.proc(["bash", "-c", "sleep 300 & echo $! > %s; wait" % pidfile], name="sleeper")
        child = int(p.wait_ready(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10))
        p.stop(timeout=2)
        wait_until(lambda: not _pid_alive(child), 5, "the grandchild to die")

    def test_wait_ready_reports_exit(self):
        p = self.proc(["bash", "-c", "echo going away >&2; exit 3"], name="quitter")
        with self.assertRaises(harness.ProcExited) as cm:
            p.wait_ready(lambda: False, 5)
        self.assertIn("going away", str(cm.exception))

    def test_stop_checked(self):
        ready = harness.tmp_path("trap.ready")
        script = 'trap "%s" TERM; touch ' + ready + '; while :; do sleep 0.05; done'
        cases = [("exit 0", None), ("exit 3", "exit status 3"),
                 ("echo ==77==ERROR: LeakSanitizer: detected memory leaks >&2; exit 0", "sanitizer"),
                 ("echo x.c:3:5: runtime error: signed integer overflow >&2; exit 0", "sanitizer")]
        for action, want in cases:
            with self.subTest(action=action):
                if os.path.exists(ready):
                    os.unlink(ready)
                p = self.proc(["bash", "-c", script % action], name="trapper")
                p.wait_ready(lambda: os.path.exists(ready), 10)
                if want is None:
                    self.assertEqual(p.stop_checked(5), 0)
                else:
                    with self.assertRaises(AssertionError) as cm:
                        p.stop_checked(5)
                    self.assertIn(want, str(cm.exception))

    def test_free_port_unique(self):
        ports = {harness.free_port() for _ in range(20)}
        self.assertEqual(len(ports), 20)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; check its state
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class RawClientTest(TestCase):
    """wire.RawClient against a scripted fake node on a local socket."""

    def fake_node(self, script):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)
        errors = []

        def serve():
            try:
                conn, _ = srv.accept()
                with conn:
                    script(conn)
            except Exception as e:  # reported by the test
                errors.append(e)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self.addCleanup(lambda: (t.join(5), self.assertEqual(errors, [])))
        return srv.getsockname()

    @staticmethod
    def recv_frame(conn):
        def exact(n):
            b = b""
            while len(b) < n:
                chunk = conn.recv(n - len(b))
                if not chunk:
                    raise EOFError
                b += chunk
            return b
        n = int.from_bytes(exact(4), "big")
        return wire.unpackb(exact(n))

    def test_script(self):
        def script(conn):
            self.assertEqual(self.recv_frame(conn), [wire.HELLO, wire.PROTO_VERSION, "subway-tests"])
            conn.sendall(wire.encode(wire.PING, 5) + wire.encode(wire.WELCOME, 1, "n1", 200, 4096))
            self.assertEqual(self.recv_frame(conn), [wire.PONG, 5])
            sub = self.recv_frame(conn)
            self.assertEqual(sub, [wire.SUBSCRIBE, 1, "t", b"k"])
            msg = wire.encode(wire.MESSAGE, 9, 2, 40, 1700000000000, b"k", b"v")
            # split a frame across writes, and two frames in one write
            conn.sendall(msg[:3])
            conn.sendall(msg[3:] + wire.encode(wire.SUBSCRIBED, 1, 9, [2]))
            self.assertEqual(self.recv_frame(conn), [wire.SUBSCRIBE, 2, "t", None])
            conn.sendall(wire.encode(wire.ERROR, 2, wire.E_UNKNOWN_TOPIC, "no such topic"))
            conn.sendall(wire.encode(wire.ERROR, 0, wire.E_BAD_FRAME, "bye"))

        addr = self.fake_node(script)
        with wire.RawClient(addr) as c:
            w = c.hello()
            self.assertEqual((w.version, w.node_id, w.heartbeat_ms, w.max_frame), (1, "n1", 200, 4096))
            self.assertEqual(c.pings, [5])
            s = c.subscribe("t", "k")
            self.assertEqual((s.req_id, s.feed, s.partitions), (1, 9, [2]))
            m = c.expect(wire.MESSAGE, 1)
            self.assertEqual((m.feed, m.partition, m.offset, m.key, m.value, m.headers),
                             (9, 2, 40, b"k", b"v", None))
            with self.assertRaises(wire.ServerError) as cm:
                c.subscribe("t", "*")
            self.assertEqual(cm.exception.code, wire.E_UNKNOWN_TOPIC)
            e = c.expect_error(wire.E_BAD_FRAME)
            self.assertEqual(e.req_id, 0)
            self.assertEqual(c.expect_closed(2), [])
            with self.assertRaises(wire.ConnectionClosed):
                c.read_frame(1)

    def test_timeout_says_what_was_seen(self):
        def script(conn):
            conn.sendall(wire.encode(wire.GOAWAY, "draining"))
            conn.recv(1)  # returns when the client closes

        addr = self.fake_node(script)
        with wire.RawClient(addr) as c:
            with self.assertRaises(TimeoutError) as cm:
                c.expect(wire.WELCOME, 0.3)
            self.assertIn("GOAWAY", str(cm.exception))
            self.assertEqual(c.read_frame(1).text, "draining")
