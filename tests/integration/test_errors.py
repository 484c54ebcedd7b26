"""test_errors.py -- every bad input gets its exact ERROR code; the node and other clients carry on.

"close" errors: ERROR, then the node closes the connection. "refuse"
errors: ERROR for that request only, the connection stays usable. After
each case another client, subscribed all along, still receives records.
"""

import itertools
import struct

from harness import NodeCase, topic_partitions
import wire
from wire import frame, packb

MAX_FRAME = 4096
_seq = itertools.count()


class BadInputTest(NodeCase):
    TOPICS = {"err": 2, "watch": 1}
    NODE_ARGS = ("--max-subs", "2", "--max-key", "16", "--max-frame", str(MAX_FRAME),
                 "--linger-ms", "200")

    def setUp(self):
        self.watcher = self.client(self.n)
        self.wsub = self.watcher.subscribe("watch", "*")

    # ---- helpers

    def assert_node_fine(self):
        """The node answers /stats and the watcher still gets records."""
        self.n.stats()
        v = "alive-%d" % next(_seq)
        self.produce("watch", [("w", v)])
        got = self.watcher.messages(1, feed=self.wsub.feed)
        self.assertEqual(got[0].value, v.encode())

    def fresh(self, hello=True):
        return self.client(self.n, hello=hello)

    def assert_closed_with(self, c, data, code):
        """Sends data on c; expects ERROR code (req_id 0), then the close."""
        before = self.n.stats()["counters"]["protocol_errors"]
        c.send_raw(data)
        e = c.expect_error(timeout=5)
        self.assertEqual(e.code, code, e)
        self.assertEqual(e.req_id, 0, e)
        self.assertIsInstance(e.text, str)
        self.assertTrue(e.text, "ERROR text is empty")
        c.expect_closed(5)
        self.n.wait_stats(lambda st: st["counters"]["protocol_errors"] >= before + 1, timeout=2,
                          what="counters.protocol_errors incremented")
        self.assert_node_fine()
        return e

    def assert_refused(self, c, fn, code):
        with self.assertRaises(wire.ServerError) as cm:
            fn()
        self.assertEqual(cm.exception.code, code, cm.exception)
        self.assertEqual(c.ping(4242).token, 4242)  # the connection stays
        self.assert_node_fine()
        return cm.exception.frame

    # ---- close errors


    def test_start_on_version_1_is_refused(self):
        """start is version 2: on a version-1 connection a SUBSCRIBE with one
        is refused with INVALID_ARG, and the connection carries on."""
        c = self.client(self.n, version=1)
        self.assertEqual(c.welcome.version, 1)
        for start in (("beginning",), ("positions", {0: 0}), ("last", 1), ("offset", 0),
                      ("timestamp", 0)):
            with self.subTest(start=start):
                f = self.assert_refused(c, lambda: c.subscribe("err", "*", start=start),
                                        wire.E_INVALID_ARG)
                self.assertEqual(f.req_id, c._req)
        sub = c.subscribe("err", "*")   # the same without a start is fine
        self.assertIsNone(sub.live)
        self.produce("err", [("v1", "after the refusals")])
        self.assertEqual(c.messages(1, feed=sub.feed)[0].value, b"after the refusals")
    def test_frame_too_large(self):
        c = self.fresh()
        self.assertEqual(c.welcome.max_frame, MAX_FRAME)
        self.assert_closed_with(c, struct.pack(">I", MAX_FRAME + 1) + b"\x90" * 16, wire.E_FRAME_TOO_LARGE)

    def test_frame_at_the_limit_is_accepted(self):
        c = self.fresh()
        rid = c.next_req_id()
        fields = [wire.PUBLISH, rid, "err", b"k"]
        overhead = len(packb(fields + [b""])) + 1  # bin8 -> bin16: one more header byte
        body = packb(fields + [b"v" * (MAX_FRAME - overhead)])
        self.assertEqual(len(body), MAX_FRAME)
        c.send_raw(frame(body))
        ack = c.expect(wire.PUBACK, 10, match=lambda f: f.req_id == rid)
        self.assertIn(ack.partition, (0, 1))

    def test_error_survives_unread_input(self):
        """The node stops reading after a fatal error; closing a socket with
        unread input makes the kernel send RST, which can destroy the ERROR
        before the client reads it. The node must half-close and drain, so
        the client reads the ERROR and then a clean end of stream."""
        c = self.fresh()
        c.send_raw(frame(b"\xc1") + b"\x00" * (1 << 20))
        raw = b""
        c.sock.settimeout(10)
        while True:
            try:
                chunk = c.sock.recv(65536)
            except ConnectionResetError:
                self.fail("connection reset: the node closed with unread input (got %d bytes first)" % len(raw))
            if not chunk:
                break
            raw += chunk
        frames = []
        pos = 0
        while pos + 4 <= len(raw):
            n = struct.unpack(">I", raw[pos:pos + 4])[0]
            frames.append(wire.unpackb(raw[pos + 4:pos + 4 + n]))
            pos += 4 + n
        errors = [f for f in frames if f[0] == wire.ERROR]
        self.assertEqual([f[2] for f in errors], [wire.E_MALFORMED], frames)
        self.assert_node_fine()

    def test_malformed_msgpack(self):
        cases = {
            "never-used byte": b"\xc1",
            "truncated array": b"\x93\x01",
            "truncated str": b"\x92\x0a\xd9\x05ab",
            "trailing bytes": b"\x92\x0a\x01\x00",
        }
        for name, body in cases.items():
            with self.subTest(name):
                c = self.fresh()
                self.assert_closed_with(c, frame(body), wire.E_MALFORMED)

    def test_not_an_array(self):
        cases = {"int": packb(10), "map": packb({"type": 10}), "str": packb("PING"),
                 "empty array": packb([]), "nil": packb(None)}
        for name, body in cases.items():
            with self.subTest(name):
                c = self.fresh()
                self.assert_closed_with(c, frame(body), wire.E_BAD_FRAME)

    def test_wrong_field_types(self):
        cases = {
            "req_id str": [wire.SUBSCRIBE, "1", "err", b"k"],
            "req_id negative": [wire.SUBSCRIBE, -1, "err", b"k"],
            "topic int": [wire.SUBSCRIBE, 1, 7, b"k"],
            "key int": [wire.SUBSCRIBE, 1, "err", 5],
            "key array": [wire.SUBSCRIBE, 1, "err", [b"k"]],
            "missing key": [wire.SUBSCRIBE, 1, "err"],
            "type str": ["3", 1, "err", b"k"],
            "ping token str": [wire.PING, "x"],
            "unsubscribe feed negative": [wire.UNSUBSCRIBE, 1, -5],
            "publish value int": [wire.PUBLISH, 1, "err", b"k", 3],
        }
        for name, body in cases.items():
            with self.subTest(name):
                c = self.fresh()
                self.assert_closed_with(c, frame(packb(body)), wire.E_BAD_FRAME)

    def test_frame_before_hello(self):
        c = self.fresh(hello=False)
        self.assert_closed_with(c, wire.encode(wire.SUBSCRIBE, 1, "err", b"k"), wire.E_HELLO_REQUIRED)

    def test_hello_twice(self):
        c = self.fresh()
        self.assert_closed_with(c, wire.encode(wire.HELLO, wire.PROTO_VERSION, "again"), wire.E_HELLO_REQUIRED)

    def test_bad_version(self):
        """Version 0 is the one a node refuses: every version from 1 up is
        welcomed (test_version_negotiation)."""
        c = self.fresh(hello=False)
        self.assert_closed_with(c, wire.encode(wire.HELLO, 0, "time-traveller"), wire.E_VERSION)

    def test_version_negotiation(self):
        """WELCOME carries the lower of the client's version and the node's
        newest (3), and the connection works at it."""
        for version, used in ((1, 1), (2, 2), (3, 3), (4, 3), (99, 3), (2 ** 64 - 1, 3)):
            with self.subTest(version=version):
                c = self.fresh(hello=False)
                w = c.hello("time-traveller", version=version)
                self.assertEqual(w.version, used, w)
                self.assertEqual(c.ping(7).token, 7)

    # ---- refuse errors

    def test_unknown_type_is_refused(self):
        c = self.fresh()
        sub = c.subscribe("err", "*")
        for t in (wire.AUTHED + 1, 99, 127):  # positive, just not known
            c.send(t, 1, 2)
            e = c.expect_error(timeout=5)
            self.assertEqual(e.code, wire.E_UNKNOWN_TYPE, e)
        self.assertEqual(c.ping(1).token, 1)
        self.produce("err", [("u", "still subscribed")])
        self.assertEqual(c.messages(1, feed=sub.feed)[0].value, b"still subscribed")
        self.assert_node_fine()

    def test_too_many_subs(self):
        c = self.fresh()
        a = c.subscribe("err", "a")
        c.subscribe("err", "b")
        f = self.assert_refused(c, lambda: c.subscribe("err", "c"), wire.E_TOO_MANY_SUBS)
        self.assertEqual(f.req_id, c._req)
        c.unsubscribe(a.feed)
        c.subscribe("err", "c")

    def test_key_size(self):
        c = self.fresh()
        self.assert_refused(c, lambda: c.subscribe("err", b"k" * 17), wire.E_INVALID_ARG)
        self.assert_refused(c, lambda: c.subscribe("err", b""), wire.E_INVALID_ARG)
        c.subscribe("err", b"k" * 16)

    def test_bad_topic_names(self):
        c = self.fresh()
        for topic in ("", "bad topic", "bad/topic", "b\u00e4d", "..", "t" * 250):
            with self.subTest(topic=topic[:20]):
                self.assert_refused(c, lambda: c.subscribe(topic, b"k"), wire.E_INVALID_ARG)

    def test_publish_checks_topic_names_as_subscribe_does(self):
        """PUBLISH used to check only the length: 'bad topic' and names with
        a NUL ('err\\0hidden' wrote to 'err') reached Kafka."""
        c = self.fresh()
        for topic in ("", "bad topic", "bad/topic", "b\u00e4d", "..", "t" * 250, "err\x00hidden"):
            with self.subTest(topic=topic[:20]):
                f = self.assert_refused(c, lambda: c.publish(topic, b"k", b"v"), wire.E_INVALID_ARG)
                self.assertIn("A-Z a-z 0-9 . _ -", f.text)
        self.assertEqual(c.publish("err", b"k", b"v").type, wire.PUBACK)

    def test_unknown_topic(self):
        c = self.fresh()
        for _ in range(2):  # the first refusal must not have created it
            f = self.assert_refused(c, lambda: c.subscribe("no-such-topic", b"k"), wire.E_UNKNOWN_TOPIC)
            self.assertIn("no-such-topic", f.text)
        self.assertNotIn("no-such-topic", topic_partitions(self.bootstrap))

    def test_error_texts_are_utf8_whatever_the_key(self):
        """An ERROR text that echoes a key keeps to UTF-8 (PROTOCOL.md 2):
        bytes of the key that are not UTF-8 become '?', so strict decoders
        (Python's msgpack, others) read the frame."""
        c = self.client(self.n)
        key = b"\xff\xfe\xc3(\xe2\x82-\xc3\xa9"   # within the class's 16-byte --max-key
        c.subscribe("err", key)
        c.send(wire.SUBSCRIBE, 99, "err", key)
        f = c.expect(wire.ERROR, match=lambda f: f.req_id == 99)
        self.assertEqual(f.code, wire.E_ALREADY_SUBSCRIBED)
        self.assertIsInstance(f.text, str, "the text is not valid UTF-8: %r" % (f.text,))
        self.assertTrue(f.text.endswith("err/???(??-\u00e9"), f.text)

    def test_unsubscribe_not_held(self):
        c = self.fresh()
        self.assert_refused(c, lambda: c.unsubscribe(123456), wire.E_NOT_SUBSCRIBED)
        # a feed handle held by another connection is not this one's
        self.assert_refused(c, lambda: c.unsubscribe(self.wsub.feed), wire.E_NOT_SUBSCRIBED)


class TooManyConnsTest(NodeCase):
    TOPICS = {"c": 1}
    NODE_ARGS = ("--max-conns", "3")

    def test_refused_over_the_limit(self):
        clients = [self.client(self.n) for _ in range(3)]
        sub = clients[0].subscribe("c", "*")
        self.assertEqual(self.n.stats()["connections"], 3)
        extra = self.client(self.n, hello=False)
        e = extra.expect_error(timeout=5)
        self.assertEqual(e.code, wire.E_TOO_MANY_CONNS, e)
        extra.expect_closed(5)
        st = self.n.wait_stats(lambda st: st["counters"]["conns_refused"] == 1, timeout=2,
                               what="conns_refused 1")
        self.assertEqual(st["connections"], 3)
        # existing clients are fine
        self.produce("c", [("k", "v")])
        self.assertEqual(clients[0].messages(1, feed=sub.feed)[0].value, b"v")
        # a slot frees when one leaves
        clients[2].close()
        self.n.wait_stats(lambda st: st["connections"] == 2, timeout=2, what="connections 2")
        late = self.client(self.n)
        self.assertEqual(late.ping(3).token, 3)


class LookupQueueTest(NodeCase):
    TOPICS = {"legit": 1}

    def test_lookups_of_clients_that_hung_up_are_dropped(self):
        """Kafka stops answering (SIGSTOP), so the lookup thread is stuck on
        one metadata request; 4096 SUBSCRIBEs to fresh topic names from four
        connections (1024 each, --max-subs) queue their lookups behind it,
        and the clients hang up. Their lookups leave the queue with their
        topics: a legitimate SUBSCRIBE is not left behind them (it once
        waited 92 s on Apache Kafka)."""
        self.kafka.proc.pause()
        try:
            floods = []
            for k in range(4):
                flood = self.client(self.n)
                flood.send_raw(b"".join(wire.encode(wire.SUBSCRIBE, i + 1, "fresh-%d-%04d" % (k, i), b"k")
                                        for i in range(1024)))
                flood.ping(1)          # all read
                floods.append(flood)
            self.assertGreaterEqual(self.n.stats()["lookups_queued"], 4095)   # one is under way
            for flood in floods:
                flood.close()
            self.n.wait_stats(lambda st: st["lookups_queued"] == 0 and st["connections"] == 0, timeout=10,
                              what="the hung-up clients' lookups dropped")
        finally:
            self.kafka.proc.resume()
        c = self.client(self.n)
        self.assertEqual(c.subscribe("legit", b"k", timeout=30).partitions, [0])
