"""test_abuse.py -- clients that never say HELLO, trickle bytes, flood requests or publish too fast cannot hurt the node or others.

Each case is a hostile recipe from the access-control issue, and checks
the limit that stops it (PROTOCOL.md section 6): the node stays small,
closes or slows down the offender with a clear ERROR, and a well-behaved
subscriber on the same node keeps receiving every record meanwhile.
"""

import itertools
import os
import socket
import struct
import time

from harness import NodeCase, wait_until
import wire
from wire import frame, packb

HELLO_MAX = 16384                 # CONN_HELLO_MAX_FRAME
_seq = itertools.count()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def ping_frame(token):
    return frame(packb([wire.PING, token]))


class HostileClientTest(NodeCase):
    TOPICS = {"abuse": 2, "watch": 1}
    NODE_ARGS = ("--hello-timeout-ms", "1000", "--max-conns", "40",
                 "--slow-timeout-ms", "1500", "--out-soft-limit", "65536", "--out-hard-limit", "1048576",
                 "--max-frame", str(1 << 20), "--linger-ms", "200")

    def setUp(self):
        self.watcher = self.client(self.n)
        self.wsub = self.watcher.subscribe("watch", "*")

    def assert_watcher_gets_all(self, n=5):
        """The well-behaved subscriber gets every record produced now."""
        vals = ["w-%d" % next(_seq) for _ in range(n)]
        self.produce("watch", [("w", v) for v in vals])
        got = self.watcher.messages(n, feed=self.wsub.feed)
        self.assertEqual([m.value for m in got], [v.encode() for v in vals])

    # ---- before HELLO

    def test_frame_before_hello_is_small(self):
        """Before HELLO a frame may be at most 16 KiB, whatever --max-frame
        says: a stranger cannot park a megabyte of input on the node."""
        c = self.raw_client(self.n)
        c.send_raw(struct.pack(">I", HELLO_MAX + 1) + b"\x93")
        e = c.expect_error(timeout=5)
        self.assertEqual(e.code, wire.E_FRAME_TOO_LARGE, e)
        c.expect_closed(5)
        # A HELLO of exactly the limit (a long client name) is fine.
        body = next(b for b in (packb([wire.HELLO, 2, "n" * k]) for k in range(HELLO_MAX - 16, HELLO_MAX))
                    if len(b) == HELLO_MAX)
        self.assertEqual(len(body), HELLO_MAX)
        ok = self.raw_client(self.n)
        ok.send_raw(frame(body))
        self.assertEqual(ok.expect(wire.WELCOME, timeout=5).type, wire.WELCOME)
        self.assertEqual(ok.ping(7).token, 7)

    def test_no_hello_is_closed_after_the_hello_timeout(self):
        """A connection that sends nothing, or bytes that never make a
        frame, is closed with HELLO_REQUIRED after --hello-timeout-ms."""
        before = self.n.stats()["counters"]["hello_closed"]
        silent = self.raw_client(self.n)
        trickler = self.raw_client(self.n)
        trickler.send_raw(struct.pack(">I", 100))
        t0 = time.monotonic()
        for c in (silent, trickler):
            e = c.expect_error(timeout=5)
            self.assertEqual(e.code, wire.E_HELLO_REQUIRED, e)
            self.assertIn("no HELLO within 1000 ms", e.text)
            c.expect_closed(5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.n.wait_stats(lambda st: st["counters"]["hello_closed"] >= before + 2, timeout=2,
                          what="counters.hello_closed + 2")

    def test_slot_holders_cannot_keep_new_clients_out(self):
        """Connections that fill every --max-conns slot and trickle a byte
        now and then are all closed within the HELLO timeout; a new client
        gets in afterwards."""
        holders = []
        for _ in range(40):
            try:
                holders.append(self.raw_client(self.n))
            except OSError:
                break
        wait_until(lambda: self.n.stats()["connections"] >= 40, timeout=5,
                   what="every slot taken")
        refused = self.raw_client(self.n)
        self.assertEqual(refused.expect_error(timeout=5).code, wire.E_TOO_MANY_CONNS)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and any(not h.closed for h in holders):
            for h in holders:
                if not h.closed:
                    try:
                        h.send_raw(b"\x00")
                    except OSError:
                        h.closed = True
            time.sleep(0.2)
        wait_until(lambda: self.n.stats()["connections"] <= 1, timeout=5,
                   what="the holders closed (only the watcher left)")
        ok = self.client(self.n)
        self.assertEqual(ok.ping(9).token, 9)
        self.assert_watcher_gets_all()

    def test_unknown_frames_before_hello_close_at_once(self):
        """Thousands of unknown-type frames before HELLO get one ERROR and a
        close, not one ERROR each."""
        c = self.raw_client(self.n)
        c.send_raw(frame(packb([99])) * 20000)
        seen = c.expect_closed(5)
        errors = [f for f in seen if f.type == wire.ERROR]
        self.assertEqual(len(errors), 1, seen[:5])
        self.assertEqual(errors[0].code, wire.E_UNKNOWN_TYPE)
        self.assert_watcher_gets_all()

    # ---- after HELLO

    def test_requests_from_a_client_that_reads_nothing_wait(self):
        """A client that floods PINGs and reads none of the PONGs: its input
        waits once its answers pass the soft limit, so the node queues at
        most about that much; it is closed as a slow consumer, and the
        watcher keeps getting every record meanwhile."""
        before = self.n.stats()["counters"]
        c = self.client(self.n, rcvbuf=4096)
        flood = ping_frame(1) * 50000          # ~600 KB of PINGs, ~600 KB of PONGs
        c.sock.setblocking(True)
        c.sock.settimeout(0.5)
        sent = 0
        t0 = time.monotonic()
        while sent < 20 * len(flood) and time.monotonic() - t0 < 3:
            try:
                sent += c.sock.send(flood)
            except (socket.timeout, BlockingIOError):
                break                           # the node stopped reading it: good
            except OSError:
                break
        c.sock.setblocking(False)
        self.n.wait_stats(lambda st: st["counters"]["input_paused"] > before["input_paused"], timeout=5,
                          what="the flooder's input paused")
        self.assertLess(sent, 20 * len(flood), "the node read the whole flood without waiting")
        for _ in range(3):
            self.assert_watcher_gets_all()
        self.n.wait_stats(lambda st: st["counters"]["slow_closed"] > before["slow_closed"], timeout=10,
                          what="the flooder closed as a slow consumer")
        wait_until(lambda: self.n.stats()["connections"] <= 1, timeout=5, what="the flooder gone")


class SilentInputTest(NodeCase):
    """Short heartbeats: what counts as life."""
    TOPICS = {"abuse": 1}
    NODE_ARGS = ("--heartbeat-ms", "300", "--max-frame", str(1 << 20), "--linger-ms", "200")

    @classmethod
    def setUpClass(cls):
        # Under AddressSanitizer freed memory waits in a quarantine before
        # it is given back: without one, RSS shows what the node holds.
        old = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = ((old + ":") if old else "") + "quarantine_size_mb=0"
        try:
            super().setUpClass()
        finally:
            if old is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = old

    def test_a_byte_trickle_is_no_sign_of_life(self):
        """Only whole frames count as life: a frame sent a byte at a time,
        never finished, ends in HEARTBEAT_TIMEOUT (it kept connections
        alive for ever)."""
        c = self.client(self.n, auto_pong=False)
        body = packb([wire.PING, 1])
        c.send_raw(struct.pack(">I", len(body) + 1000))
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 5 and not closed:
            try:
                c.send_raw(b"\x00")
            except OSError:
                break
            try:
                f = c.read_frame(timeout=0.1, auto_pong=False)
            except TimeoutError:
                continue
            except wire.ConnectionClosed:
                break
            if f.type == wire.ERROR:
                self.assertEqual(f.code, wire.E_HEARTBEAT_TIMEOUT, f)
                closed = True
        self.assertTrue(closed, "the trickling connection was not closed")

    def test_parked_input_is_bounded_and_given_back(self):
        """20 connections each sending most of a 1 MiB frame: each is
        closed when its frame does not complete within the heartbeat
        timeout, and the node gives the memory back afterwards."""
        base = rss_kb(self.n.proc.pid)
        cs = []
        part = struct.pack(">I", 1 << 20) + b"\x95" + b"\x00" * (900 << 10)
        for _ in range(20):
            c = self.client(self.n, auto_pong=False)
            c.send_raw(part)
            cs.append(c)
        wait_until(lambda: self.n.stats()["connections"] <= 1, timeout=10,
                   what="the parkers closed by the heartbeat timeout")
        for c in cs:
            e = c.expect_error(timeout=5)
            self.assertEqual(e.code, wire.E_HEARTBEAT_TIMEOUT, e)
        # 20 x 1 MiB was held at the peak; at most a few MiB may stay.
        wait_until(lambda: rss_kb(self.n.proc.pid) < base + 8192, timeout=5,
                   what="RSS back near its %d kB baseline" % base)


class PublishLimitsTest(NodeCase):
    TOPICS = {"pub": 2}
    NODE_ARGS = ("--publish-rate", "200", "--max-publish-inflight", "5", "--linger-ms", "200")

    def test_publish_rate_makes_a_fast_publisher_wait(self):
        """Over --publish-rate (200/s, a burst of 200), PUBLISHes wait
        rather than fail: 600 pipelined ones are all acknowledged, and take
        at least the two seconds the rate allows."""
        c = self.client(self.n)
        t0 = time.monotonic()
        n = 600
        c.send_raw(b"".join(frame(packb([wire.PUBLISH, i + 1, "pub", b"k", b"v%d" % i]))
                            for i in range(n)))
        acks = set()
        while len(acks) < n:
            f = c.read_frame(timeout=10)
            self.assertEqual(f.type, wire.PUBACK, f)
            acks.add(f.req_id)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertEqual(acks, set(range(1, n + 1)))

    def test_publishes_awaiting_kafka_are_bounded(self):
        """While Kafka does not answer, a connection has at most
        --max-publish-inflight PUBLISHes waiting; the rest wait unread and
        all are acknowledged once Kafka is back."""
        c = self.client(self.n)
        self.assertEqual(c.publish("pub", b"k", b"warm").type, wire.PUBACK)
        before = self.n.stats()["counters"]["input_paused"]
        self.kafka.proc.pause()
        try:
            c.send_raw(b"".join(frame(packb([wire.PUBLISH, 100 + i, "pub", b"k", b"x"])) for i in range(20)))
            self.n.wait_stats(lambda st: st["counters"]["input_paused"] > before, timeout=5,
                              what="input paused at 5 PUBLISHes in flight")
        finally:
            self.kafka.proc.resume()
        acks = set()
        while len(acks) < 20:
            f = c.read_frame(timeout=15)
            self.assertEqual(f.type, wire.PUBACK, f)
            acks.add(f.req_id)
        self.assertEqual(acks, set(range(100, 120)))


class PublishOffTest(NodeCase):
    TOPICS = {"pub": 1}
    NODE_ARGS = ("--publish", "off",)

    def test_publish_off_is_forbidden(self):
        c = self.client(self.n)
        with self.assertRaises(wire.ServerError) as cm:
            c.publish("pub", b"k", b"v")
        self.assertEqual(cm.exception.code, wire.E_FORBIDDEN)
        self.assertIn("--publish off", cm.exception.frame.text)
        self.assertEqual(c.ping(3).token, 3)   # the connection stays
