"""test_subscribe.py -- subscribing, sharing feeds, unsubscribing, releasing on disconnect."""

from harness import NodeCase, consume, java_partition
import wire
from wire import MESSAGE


class SubscribeTest(NodeCase):
    TOPICS = {"events": 3, "wild": 4, "shared": 3, "unsub": 2, "disc": 2, "resub": 3}
    NODE_ARGS = ("--linger-ms", "200")

    def test_hello_welcome(self):
        c = self.client(self.n, hello=False)
        w = c.hello("hello-test")
        self.assertEqual(w.type, wire.WELCOME)
        self.assertEqual(w.version, wire.PROTO_VERSION)
        self.assertEqual(w.heartbeat_ms, 5000)
        self.assertEqual(w.max_frame, 1048576)
        s = self.n.stats()
        self.assertEqual(w.node_id, s["node_id"])
        self.assertGreaterEqual(s["connections"], 1)
        self.assertEqual(c.ping(77).token, 77)

    def test_exact_key(self):
        c = self.client(self.n)
        sub = c.subscribe("events", "alice")
        part = java_partition("alice", 3)
        self.assertEqual(sub.partitions, [part])
        recs = [("alice", "a1"), ("bob", "b1"), ("alice", "a2"), ("carol", "c1"),
                ("bob", "b2"), (None, "nokey"), ("alice", "a3")]
        self.produce("events", recs)
        msgs = c.messages(3, feed=sub.feed)
        self.assertEqual([m.value for m in msgs], [b"a1", b"a2", b"a3"])
        for m in msgs:
            self.assertEqual(m.key, b"alice")
            self.assertEqual(m.partition, part)
            self.assertGreater(m.timestamp_ms, 1500000000000)
        # the same partition/offsets Kafka has for them
        in_kafka = [(r["partition"], r["offset"], r["value"].encode())
                    for r in consume(self.bootstrap, "events", partition=part) if r["key"] == "alice"]
        self.assertEqual([(m.partition, m.offset, m.value) for m in msgs], in_kafka)
        # nothing for other keys
        self.assertEqual([f for f in c.collect(0.3) if f.type == MESSAGE], [])
        s = self.n.wait_stats(lambda s: (self.n.feed("events", "alice", s) or {}).get("records") == 3,
                              what="feed events/alice with records 3")
        f = self.n.feed("events", "alice", s)
        self.assertEqual((f["handle"], f["subscribers"], f["partitions"], f["lingering"]),
                         (sub.feed, 1, [part], False))
        self.assertIn({"topic": "events", "partition": part}, s["assigned"])

    def test_wildcard_gets_every_key(self):
        c = self.client(self.n)
        sub = c.subscribe("wild", "*")
        self.assertEqual(sorted(sub.partitions), [0, 1, 2, 3])
        recs = [("k%d" % i, "v%d" % i) for i in range(12)] + [(None, "nokey")]
        self.produce("wild", recs)
        msgs = c.messages(len(recs), feed=sub.feed)
        got = sorted((m.key or b"", m.value) for m in msgs)
        want = sorted(((k or "").encode(), v.encode()) for k, v in recs)
        self.assertEqual(got, want)
        self.assertIn(None, [m.key for m in msgs])
        for m in msgs:
            if m.key is not None:
                self.assertEqual(m.partition, java_partition(m.key, 4))
        f = self.n.feed("wild", None)
        self.assertIsNotNone(f, "no /stats feed with key null for wild/*")
        self.assertEqual(sorted(f["partitions"]), [0, 1, 2, 3])
        self.assertEqual(self.n.assigned("wild"), [0, 1, 2, 3])

    def test_two_clients_share_one_feed(self):
        a = self.client(self.n)
        b = self.client(self.n)
        sa = a.subscribe("shared", "k1")
        sb = b.subscribe("shared", "k1")
        self.assertEqual(sa.feed, sb.feed)
        self.assertEqual(sa.partitions, sb.partitions)
        s = self.n.stats()
        entries = [f for f in s["feeds"] if f["topic"] == "shared" and f["key"] == "k1"]
        self.assertEqual(len(entries), 1, s["feeds"])
        self.assertEqual(entries[0]["subscribers"], 2)
        self.assertEqual(entries[0]["handle"], sa.feed)
        self.assertGreaterEqual(s["subscriptions"], 2)
        # the wildcard of the same topic is another feed
        w = a.subscribe("shared", "*")
        self.assertNotEqual(w.feed, sa.feed)
        self.produce("shared", [("k1", "x1"), ("k2", "y"), ("k1", "x2")])
        ma = a.messages(2, feed=sa.feed)
        mb = b.messages(2, feed=sb.feed)
        self.assertEqual([(m.partition, m.offset, m.value) for m in ma],
                         [(m.partition, m.offset, m.value) for m in mb])
        self.assertEqual([m.value for m in ma], [b"x1", b"x2"])
        self.assertEqual(len(a.messages(3, feed=w.feed)), 3)

    def test_already_subscribed_is_refused(self):
        c = self.client(self.n)
        c.subscribe("events", "twice")
        with self.assertRaises(wire.ServerError) as cm:
            c.subscribe("events", "twice")
        self.assertEqual(cm.exception.code, wire.E_ALREADY_SUBSCRIBED)
        self.assertEqual(c.ping(5).token, 5)  # refused, not closed

    def test_unsubscribe(self):
        c = self.client(self.n)
        s = c.subscribe("unsub", "gone")
        sentinel = c.subscribe("events", "unsub-sentinel")
        self.produce("unsub", [("gone", "before")])
        self.assertEqual(c.messages(1, feed=s.feed)[0].value, b"before")
        u = c.unsubscribe(s.feed)
        self.assertEqual(u.type, wire.UNSUBSCRIBED)
        self.assertEqual(u.feed, s.feed)
        self.produce("unsub", [("gone", "after")])
        self.produce("events", [("unsub-sentinel", "done")])
        c.messages(1, feed=sentinel.feed)
        late = [f for f in c.collect(0.3) if f.type == MESSAGE and f.feed == s.feed]
        self.assertEqual(late, [])
        # after the linger (200 ms) the feed and its partitions are gone
        st = self.n.wait_stats(lambda st: self.n.feed("unsub", "gone", st) is None
                               and self.n.assigned("unsub", st) == [],
                               what="feed unsub/gone gone and no unsub partitions assigned")
        self.assertIsNotNone(self.n.feed("events", "unsub-sentinel", st))
        # unsubscribing again: not held
        with self.assertRaises(wire.ServerError) as cm:
            c.unsubscribe(s.feed)
        self.assertEqual(cm.exception.code, wire.E_NOT_SUBSCRIBED)

    def test_resubscribe_races(self):
        """subscribe/unsubscribe/subscribe inside the linger and after it:
        the feed keeps working (the bug Lightstreamer's connector had)."""
        c = self.client(self.n)
        for i in range(10):
            s = c.subscribe("resub", "r")
            c.unsubscribe(s.feed)
        s = c.subscribe("resub", "r")
        self.produce("resub", [("r", "1")])
        self.assertEqual(c.messages(1, feed=s.feed)[0].value, b"1")
        c.unsubscribe(s.feed)
        self.n.wait_stats(lambda st: self.n.feed("resub", "r", st) is None, what="resub/r released")
        s = c.subscribe("resub", "r")
        self.produce("resub", [("r", "2")])
        self.assertEqual(c.messages(1, feed=s.feed)[0].value, b"2")
        st = self.n.stats()
        f = self.n.feed("resub", "r", st)
        self.assertEqual((f["subscribers"], f["lingering"]), (1, False))
        self.assertEqual(self.n.assigned("resub", st), [java_partition("r", 3)])

    def test_disconnect_releases_at_once(self):
        base = self.n.stats()["subscriptions"]
        c = self.client(self.n)
        c.subscribe("disc", "x")
        c.subscribe("disc", "*")
        self.assertEqual(self.n.stats()["subscriptions"], base + 2)
        c.close()
        self.n.wait_stats(lambda st: st["subscriptions"] == base, timeout=2,
                          what="subscriptions back to %d right after the close" % base)
        self.n.wait_stats(lambda st: self.n.feed("disc", "x", st) is None
                          and self.n.feed("disc", None, st) is None
                          and self.n.assigned("disc", st) == [],
                          what="disc feeds gone after the linger")


class HeadersTest(NodeCase):
    TOPICS = {"hdr": 1}

    def test_every_header_is_forwarded(self):
        """A record with 100 headers (the node once cut them at 64, silently)
        arrives with all 100, in record order."""
        c = self.client(self.n)
        sub = c.subscribe("hdr", "k")
        extra = []
        for i in range(100):
            extra += ["-H", "h%03d=v%d" % (i, i)]
        self.produce("hdr", [("k", "many headers")], extra=extra)
        m = c.messages(1, feed=sub.feed)[0]
        self.assertEqual(m.value, b"many headers")
        self.assertEqual([(h[0], h[1]) for h in m.headers], [("h%03d" % i, b"v%d" % i) for i in range(100)])
        self.assertEqual(self.n.stats()["counters"]["headers_cut"], 0)


class OversizeTest(NodeCase):
    TOPICS = {"big": 1}
    NODE_ARGS = ("--max-message", "2048")

    def test_a_record_no_client_takes_comes_as_dropped(self):
        """A record whose MESSAGE would pass --max-message (what clients
        accept by default: libsubway's max_frame is the node's default) is
        not sent: DROPPED 1 in its place, live and in a catch-up alike."""
        c = self.client(self.n)
        sub = c.subscribe("big", "k")
        self.produce("big", [("k", "small-1"), ("k", "x" * 4000), ("k", "small-2")])
        got = [c.expect(None, match=lambda f: f.type in (wire.MESSAGE, wire.DROPPED) and f.feed == sub.feed)
               for _ in range(3)]
        self.assertEqual([(f.type, f.value if f.type == wire.MESSAGE else f.count) for f in got],
                         [(wire.MESSAGE, b"small-1"), (wire.DROPPED, 1), (wire.MESSAGE, b"small-2")])
        d = self.client(self.n)
        s2 = d.subscribe("big", "k", start=("beginning",))
        frames, live = d.until_live(s2.feed)
        self.assertEqual([(f.type, f.value if f.type == wire.MESSAGE else f.count) for f in frames],
                         [(wire.MESSAGE, b"small-1"), (wire.DROPPED, 1), (wire.MESSAGE, b"small-2")])
        self.assertEqual(self.n.stats()["counters"]["oversize"], 2)
