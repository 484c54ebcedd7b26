"""test_catchup_adversarial.py -- catch-ups (PROTOCOL.md 5.8) under attack: crowds, hang-ups, odd starts, limits.

Every expectation is computed from what Kafka holds (read back with kcat):
per partition, a subscription gets each offset from its start on exactly
once, in offset order, whatever the other clients do meanwhile; where flow
control drops live records (PROTOCOL.md 5.6), DROPPED counts them.

Mostly one node over the mock Kafka; RelayCatchupTest runs two-node
clusters (Redis); GrowingTopicTest needs a real Apache Kafka
(kafka_real.py: the mock cannot add partitions).
"""

import random
import socket
import threading
import time

from harness import MockKafka as harness_mock_kafka
from harness import produce as harness_produce_raw
from harness import NodeCase, TestCase, consume, java_partition, wait_until
from test_resume import CLUSTER_ARGS, Producer
import wire


def kafka_offsets(bootstrap, topic, key=None):
    """{partition: [offset, ...]} in offset order, as Kafka has them (of
    the records with that key, when given)."""
    out = {}
    for r in consume(bootstrap, topic):
        if key is None or r["key"] == key:
            out.setdefault(r["partition"], []).append(r["offset"])
    for p in out:
        out[p].sort()
    return out


def asked_positions(start, want):
    """{partition: offset} a start asks for in the partitions of want: 0 for
    beginning, the offset for offset, the listed ones for positions."""
    if start[0] == "beginning":
        return {p: 0 for p in want}
    if start[0] == "offset":
        return {p: start[1] for p in want}
    if start[0] == "positions":
        return dict(start[1])
    return {}


def wire_partition(key, n):
    return java_partition(key.encode(), n)


def ends_of(offsets, partitions):
    return {p: (offsets[p][-1] + 1 if offsets.get(p) else 0) for p in range(partitions)}


class Reader:
    """One client on its own thread: subscribes with a start, then reads
    every frame of its feed until told the log ends and it has reached them
    (or its LIVE says it is past them). slow: sleeps a little between
    frames, on a tiny receive buffer, so the node parks its catch-up."""

    def __init__(self, node, topic, key, start, slow=False, version=2):
        self.node, self.topic, self.key, self.start = node, topic, key, start
        self.slow = slow
        self.version = version
        self.frames = []          # this feed's MESSAGE / DROPPED / LIVE frames, in order
        self.errors = []
        self.sub = None
        self.live = None
        self.target = None       # {partition: end} to read up to, set by the test
        self.quiet_since = None
        self.done = threading.Event()
        self.subscribed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def reached(self):
        if self.target is None or (self.version >= 2 and self.live is None):
            return False
        if self.quiet_since is not None and time.monotonic() - self.quiet_since > 1.5 and any(
                f.type == wire.DROPPED for f in self.frames):
            return True   # flow control dropped the last live records: DROPPED said so
        last = {}
        for f in self.frames:
            if f.type == wire.MESSAGE:
                last[f.partition] = f.offset + 1
        for p, end in self.target.items():
            at = last.get(p, -1)
            if self.live is not None:
                at = max(at, self.live.position_map().get(p, -1))
            if at < end:
                return False
        return True

    def _run(self):
        try:
            kw = {"rcvbuf": 4096} if self.slow else {}
            c = self.c = wire.RawClient(self.node.addr, timeout=30, version=self.version, **kw)
            c.hello()
            self.sub = c.subscribe(self.topic, self.key, start=self.start, timeout=30)
            if self.sub.live is not None:
                self.live = self.sub.live
                self.frames.append(self.sub.live)
            self.subscribed.set()
            n = 0
            while not self.reached():
                try:
                    f = c.read_frame(timeout=0.5)
                    self.quiet_since = None
                except TimeoutError:
                    if self.quiet_since is None:
                        self.quiet_since = time.monotonic()
                    continue
                if f.type in (wire.MESSAGE, wire.DROPPED, wire.LIVE) and f.feed == self.sub.feed:
                    self.frames.append(f)
                    if f.type == wire.LIVE:
                        self.live = f
                elif f.type in (wire.ERROR, wire.GOAWAY):
                    self.errors.append(f)
                n += 1
                if self.slow and n % 50 == 0:
                    time.sleep(0.002)   # a slow reader, not synchronisation
        except Exception as e:   # reported by the test
            self.errors.append(repr(e))
        finally:
            self.subscribed.set()
            self.done.set()

    def close(self):
        c = getattr(self, "c", None)
        if c is not None:
            c.close()

    def describe(self):
        offs = self.offsets()
        return "%r slow=%s: LIVE %r, per partition (count, first, last) %r, DROPPED %r, errors %r" % (
            self.start, self.slow, self.live and self.live.position_map(),
            {p: (len(o), o[0], o[-1]) for p, o in offs.items()},
            [f.count for f in self.frames if f.type == wire.DROPPED], self.errors)

    def offsets(self):
        """{partition: [offset, ...]} of the MESSAGE frames, in arrival order."""
        out = {}
        for f in self.frames:
            if f.type == wire.MESSAGE:
                out.setdefault(f.partition, []).append(f.offset)
        return out


class AdversarialCatchupTest(NodeCase):
    TOPICS = {"crowd": 3, "retain": 1, "wide32": 32, "quitall": 3, "notread": 4, "hard": 1, "mixed": 2, "rare": 2, "churn": 2, "dupes": 2}
    NODE_ARGS = ["--out-soft-limit", "65536", "--out-hard-limit", "1048576", "--catchup-readers", "2"]

    def test_positions_naming_a_partition_the_feed_does_not_read_are_ignored(self):
        """PROTOCOL.md 4: POSITIONS entries naming a partition the feed does
        not read are ignored (a key's partition may have moved): a partition
        past the topic's count on an every-key feed, another partition than
        the key's on an exact-key feed. The entries for the feed's own
        partitions are honoured, and LIVE names only those."""
        key = "nr-key"
        kp = wire_partition(key, 4)
        other = (kp + 1) % 4
        self.produce("notread", [(key, "v%d" % i) for i in range(6)])
        want = kafka_offsets(self.bootstrap, "notread")
        ends = {p: (want[p][-1] + 1 if want.get(p) else 0) for p in range(4)}
        c = self.client(self.n)
        for k, positions, expect in (("*", {0: 0, 99: 5}, {0: [o for o in want.get(0, [])]}),
                                     (key, {other: 0}, {}),
                                     (key, {kp: 2, other: 3}, {kp: [o for o in want[kp] if o >= 2]})):
            with self.subTest(key=k, positions=positions):
                sub = c.subscribe("notread", k, start=("positions", positions))
                frames, live = c.until_live(sub.feed)
                got = {}
                for f in frames:
                    got.setdefault(f.partition, []).append(f.offset)
                self.assertEqual(got, {p: o for p, o in expect.items() if o})
                self.assertEqual(set(live.position_map()), set(sub.partitions))
                self.assertEqual(live.position_map(), {p: ends[p] for p in sub.partitions})
                c.unsubscribe(sub.feed)
        c.ping(7)

    def test_a_catch_up_never_pushes_a_reading_client_past_the_hard_limit(self):
        """A catch-up waits while the queue is above the soft limit, never
        drops and "never holds the connection's memory beyond the soft
        limit" (PROTOCOL.md 5.8): so it must not fill the queue past the
        hard limit in one go either, which closes the connection as a
        SLOW_CONSUMER. Soft limit 64 KiB, hard 512 KiB, 1500 records of
        2 kB: a client that reads all the time gets the whole history."""
        n = self.node(self.bootstrap, ["--out-soft-limit", "65536", "--out-hard-limit", "524288"])
        self.produce("hard", [(None, "%04d-%s" % (i, "h" * 2100)) for i in range(1500)], partition=0)
        want = kafka_offsets(self.bootstrap, "hard")
        self.assertEqual(len(want[0]), 1500)
        c = self.client(n)
        sub = c.subscribe("hard", "*", start=("beginning",))
        try:
            frames, live = c.until_live(sub.feed, timeout=30)
        except (wire.ConnectionClosed, TimeoutError) as e:
            errors = [f for f in c.pending if f.type == wire.ERROR]
            self.fail("the catch-up did not complete: %s; ERRORs: %r; counters %r"
                      % (str(e)[:200], errors, n.stats()["counters"]))
        self.assertEqual({f.type for f in frames}, {wire.MESSAGE})
        self.assertEqual([f.offset for f in frames], want[0])
        self.assertEqual(live.position_map(), {0: 1500})

    # ------------------------------------------------------------ crowds

    def check_reader(self, r, want, known_start):
        """r's records against Kafka's offsets want {p: [offset]}: per
        partition each offset from its start once, in order; DROPPED only
        for live records a slow client missed (counted exactly); after LIVE,
        every partition from LIVE's position on."""
        self.assertEqual(r.errors, [], "client %r" % (r.start,))
        got = r.offsets()
        dropped = sum(f.count for f in r.frames if f.type == wire.DROPPED)
        live = r.live.position_map()
        self.assertEqual(sorted(live), sorted(want), "LIVE names every partition")
        missing = 0
        for p, offs in want.items():
            g = got.get(p, [])
            self.assertEqual(g, sorted(set(g)), "partition %d of %r: in order, none twice" % (p, r.start))
            start = known_start.get(p)
            exact = start is not None
            if start is None:
                start = min(g[0] if g else live[p], live[p])
            expect = [o for o in offs if o >= start]
            self.assertTrue(set(g) <= set(expect), "partition %d of %r: only offsets from %d" % (p, r.start, start))
            if not dropped:
                self.assertEqual(g, expect, "partition %d of %r from %d" % (p, r.start, start))
            if exact:
                missing += len(expect) - len(g)
        # Flow control may drop live records of partitions that joined
        # (PROTOCOL.md 5.6); DROPPED counts them, so it covers at least what
        # is missing where the start is known.
        self.assertLessEqual(missing, dropped, "DROPPED counts what %r missed" % (r.start,))
        if not dropped:
            i = r.frames.index(r.live)
            after = {}
            for f in r.frames[i + 1:]:
                if f.type == wire.MESSAGE:
                    after.setdefault(f.partition, []).append(f.offset)
            for p, offs in want.items():
                self.assertEqual(after.get(p, []), [o for o in offs if o >= live[p]],
                                 "partition %d of %r after LIVE %r" % (p, r.start, live))

    def test_a_crowd_catching_up_from_everywhere_while_records_flow(self):
        """Thirteen clients, fast and slow (a 4 kB receive buffer), catch up
        on the same three partitions from different places (the beginning,
        positions, an offset, the last N, partitions left live) while
        records are produced, with two readers at most: each gets every
        record from its start once, in order, and follows the live feed
        from its LIVE positions."""
        topic, parts = "crowd", 3
        for p in range(parts):
            self.produce(topic, [(None, "%d-%05d-%s" % (p, i, "c" * 300)) for i in range(2000)], partition=p)
        stop = threading.Event()
        batches = [0]

        def produce_more():
            i = 0
            while not stop.is_set():
                self.produce(topic, [("k%d" % (j % 7), "live-%d-%d" % (i, j)) for j in range(150)])
                batches[0] += 1
                i += 1
        t = threading.Thread(target=produce_more, daemon=True)
        t.start()
        rng = random.Random(7)
        starts = [("beginning",), ("positions", {0: 1500, 1: 10, 2: 1999}), ("offset", 1500), ("last", 700),
                  ("positions", {1: 0}), ("positions", {0: 0, 1: 0, 2: 0}), ("offset", 0), ("last", 1),
                  ("positions", {2: 1234}), ("positions", {0: 1999, 1: 1999, 2: 1999}),
                  ("offset", 2000), ("positions", {0: 100, 2: 100}), ("beginning",)]
        readers = []
        try:
            wait_until(lambda: batches[0] >= 1, 30, "live records flowing")
            for i, start in enumerate(starts):
                readers.append(Reader(self.n, topic, "*", start, slow=(i % 3 == 1)))
                if rng.random() < 0.5:
                    readers[-1].subscribed.wait(30)
            wait_until(lambda: all(r.live is not None or r.done.is_set() for r in readers), 60,
                       "every client LIVE")
            wait_until(lambda: batches[0] >= 3, 30, "more live records")
        finally:
            stop.set()
            t.join(60)
        want = kafka_offsets(self.bootstrap, topic)
        ends = ends_of(want, parts)
        for r in readers:
            r.target = ends
        try:
            try:
                wait_until(lambda: all(r.done.is_set() for r in readers), 60, "every client at the log end")
            except AssertionError:
                self.fail("clients short of the log ends %r:\n%s\nstats %r" % (ends, "\n".join(
                    r.describe() for r in readers if not r.done.is_set()), self.n.stats()["catchup"]))
        finally:
            for r in readers:
                r.close()
        counters = self.n.stats()["counters"]
        for r in readers:
            self.assertEqual(r.errors, [], "client %r (slow=%s); node counters %r" % (r.start, r.slow, counters))
        for r in readers:
            known = {}
            s = r.start
            if s[0] == "beginning":
                known = {p: 0 for p in range(parts)}
            elif s[0] == "offset":
                known = {p: s[1] for p in range(parts)}
            elif s[0] == "positions":
                known = dict(s[1])
            self.check_reader(r, want, known)
        self.n.wait_stats(lambda st: st["catchup"]["readers"] == 0 and st["catchup"]["parked"] == 0, timeout=20,
                          what="no catch-up left")

    # ------------------------------------------------------------ churn

    def test_hanging_up_and_resubscribing_at_every_stage(self):
        """Clients that go at every stage of a catch-up: right after the
        SUBSCRIBE (before the start is looked up), parked, reading, right at
        LIVE; and clients that unsubscribe half way and subscribe again on
        the same connection from the positions they reached, which must
        continue exactly where they stopped. Afterwards no catch-up is
        left and a new one is exact."""
        topic, parts = "churn", 2
        for p in range(parts):
            self.produce(topic, [(None, "%05d-%s" % (i, "z" * 1500)) for i in range(2000)], partition=p)
        want = kafka_offsets(self.bootstrap, topic)
        holder = self.client(self.n)
        handle = holder.subscribe(topic, "*").feed
        rng = random.Random(11)
        for it in range(24):
            kind = it % 6
            if kind == 0:
                # SUBSCRIBE and UNSUBSCRIBE in one write (the handle is the
                # feed's, known from the holder), then SUBSCRIBE again.
                c = self.client(self.n)
                c.send_raw(wire.encode(wire.SUBSCRIBE, 1, topic, None, wire.encode_start(("beginning",))) +
                           wire.encode(wire.UNSUBSCRIBE, 2, handle) +
                           wire.encode(wire.SUBSCRIBE, 3, topic, None, wire.encode_start(("offset", 1990))))
                c.expect(wire.UNSUBSCRIBED, match=lambda f: f.req_id == 2)
                c.pending.clear()
                frames, live = c.until_live(handle)
                got = [f for f in frames if f.type == wire.MESSAGE and f.offset >= 1990]
                self.assertGreaterEqual(len(got), 20, frames[-3:])
                c.close()
            elif kind == 1:
                # SUBSCRIBE with a start, hang up at once (RST).
                s = socket.create_connection(self.n.addr)
                s.sendall(wire.encode(wire.HELLO, 2, "rst") +
                          wire.encode(wire.SUBSCRIBE, 1, topic, None, wire.encode_start(("last", 1000))))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            elif kind == 2:
                # Parked (it reads nothing), then unsubscribes and resubscribes.
                c = self.client(self.n, rcvbuf=4096)
                sub = c.subscribe(topic, "*", start=("beginning",))
                self.n.wait_stats(lambda st: st["catchup"]["parked"] >= 1, timeout=20, what="parked")
                c.unsubscribe(sub.feed, timeout=30)
                c.pending.clear()
                sub = c.subscribe(topic, "*", start=("offset", 1999), timeout=30)
                frames, live = c.until_live(sub.feed, timeout=30)
                self.assertEqual(live.position_map(), {0: 2000, 1: 2000})
                c.close()
            elif kind == 3:
                # Reads part of it, unsubscribes, resumes from its positions
                # on the same connection: nothing missed, nothing twice.
                c = self.client(self.n)
                sub = c.subscribe(topic, "*", start=("beginning",))
                n = rng.randrange(1, 3000)
                got = [f for f in c.messages(n, timeout=30, feed=sub.feed)]
                c.unsubscribe(sub.feed, timeout=30)
                c.pending.clear()   # on the way before UNSUBSCRIBED: ignored (PROTOCOL.md 5.4)
                pos = {p: 0 for p in range(parts)}
                for f in got:
                    pos[f.partition] = f.offset + 1
                sub = c.subscribe(topic, "*", start=("positions", pos), timeout=30)
                frames, live = c.until_live(sub.feed, timeout=30)
                offs = {}
                for f in got + [f for f in frames if f.type == wire.MESSAGE]:
                    offs.setdefault(f.partition, []).append(f.offset)
                self.assertEqual(offs, want, "resumed from %r after %d records" % (pos, n))
                c.close()
            elif kind == 4:
                # Hangs up right at LIVE.
                c = self.client(self.n)
                sub = c.subscribe(topic, "*", start=("last", rng.randrange(0, 50)))
                c.until_live(sub.feed, timeout=30)
                c.close()
            else:
                # Hangs up while reading.
                c = self.client(self.n, rcvbuf=4096)
                sub = c.subscribe(topic, "*", start=("positions", {0: rng.randrange(2000), 1: 0}))
                c.messages(rng.randrange(1, 200), timeout=30, feed=sub.feed)
                c.close()
        self.n.wait_stats(lambda st: st["catchup"] == {"readers": 0, "active": 0, "queued": 0, "reading": 0,
                                                       "parked": 0, "resolving": 0},
                          timeout=30, what="no catch-up left")
        c = self.client(self.n)
        sub = c.subscribe(topic, "*", start=("beginning",))
        frames, live = c.until_live(sub.feed, timeout=30)
        offs = {}
        for f in frames:
            offs.setdefault(f.partition, []).append(f.offset)
        self.assertEqual(offs, want)
        self.assertEqual(live.position_map(), {0: 2000, 1: 2000})

    # ---------------------------------------------- many partitions, keys

    def test_one_reader_for_many_partitions_and_keys(self):
        """--catchup-readers 1 on a 32-partition topic: an every-key
        catch-up, exact-key ones of keys drowned in others, LAST 3, an empty
        POSITIONS list and one naming a partition twice, a version-1 client
        and a live version-2 one on the same feeds, all at once while
        records are produced: each exact."""
        topic, parts = "wide32", 32
        n = self.node(self.bootstrap, ["--catchup-readers", "1"])
        keys = ["rare-a", "rare-b"]
        recs = []
        for i in range(6000):
            recs.append((keys[i % 2] if i % 97 == 0 else "noise-%d" % (i % 501), "w%05d" % i))
        self.produce(topic, recs)
        before = kafka_offsets(self.bootstrap, topic)
        ends0 = ends_of(before, parts)
        live_v2 = Reader(n, topic, "*", None)
        live_v1 = Reader(n, topic, "*", None, version=1)
        live_v1k = Reader(n, topic, "rare-a", None, version=1)
        for r in (live_v2, live_v1, live_v1k):
            r.subscribed.wait(30)
            self.assertEqual(r.errors, [])
        specs = [("*", ("beginning",)), ("rare-a", ("beginning",)), ("rare-b", ("offset", 0)),
                 ("*", ("last", 3)), ("*", ("positions", {})), ("*", ("positions", [(5, 10), (5, 20), (7, 0)])),
                 ("rare-b", ("last", 1))]
        readers = [Reader(n, topic, k, s, slow=(i % 2 == 1)) for i, (k, s) in enumerate(specs)]
        for r in readers:
            r.subscribed.wait(30)
        self.produce(topic, [(keys[i % 2] if i % 7 == 0 else "noise-%d" % i, "late%04d" % i) for i in range(700)])
        wait_until(lambda: all(r.live is not None or r.done.is_set() for r in readers), 60, "every client LIVE")
        every = kafka_offsets(self.bootstrap, topic)
        ends = ends_of(every, parts)
        keyed = {k: kafka_offsets(self.bootstrap, topic, k) for k in keys}
        for r in readers + [live_v2, live_v1, live_v1k]:
            if r.key == "*":
                r.target = ends
            else:
                kp = java_partition(r.key.encode(), parts)
                r.target = {kp: keyed[r.key][kp][-1] + 1}
        try:
            wait_until(lambda: all(r.done.is_set() for r in readers + [live_v2, live_v1, live_v1k]), 60,
                       "every client at the log end")
        except AssertionError:
            self.fail("clients short of the log ends:\n%s" % "\n".join(
                r.describe() for r in readers + [live_v2, live_v1, live_v1k] if not r.done.is_set()))
        finally:
            for r in readers + [live_v2, live_v1, live_v1k]:
                r.close()
        for r in readers:
            if r.key == "*":
                want = every
            else:
                kp = java_partition(r.key.encode(), parts)
                want = {kp: keyed[r.key][kp]}
            s = r.start
            known = asked_positions(s, want) if s[0] != "positions" or isinstance(s[1], dict) else {5: 10, 7: 0}
            if s[0] == "positions":
                for p in want:
                    known.setdefault(p, ends0[p])   # not listed: live, from the end then
            self.check_reader(r, want, known)
        # The live ones: every record produced after they joined, in order, once.
        for r in (live_v2, live_v1, live_v1k):
            self.assertEqual(r.errors, [])
            self.assertFalse(any(f.type == wire.DROPPED for f in r.frames))
            got = r.offsets()
            if r.key == "*":
                want = {p: [o for o in every[p] if o >= ends0[p]] for p in every}
            else:
                kp = java_partition(r.key.encode(), parts)
                want = {kp: [o for o in keyed[r.key][kp] if o >= ends0[kp]]}
            want = {p: v for p, v in want.items() if v}
            self.assertEqual(got, want, "live %s/%s version %d" % (topic, r.key, r.version))
        self.assertFalse(any(f.type == wire.LIVE for f in live_v1.frames + live_v1k.frames), "no LIVE on version 1")

    # ------------------------------------------------------- odd starts

    def test_odd_starts(self):
        """Extreme and odd starts: the largest offset (past any end: LIVE
        says it as asked, nothing comes), LAST of the largest N (the log
        start), a timestamp far in the future (the log end) and before 1970,
        a partition named twice (the first wins), an empty list (all live).
        The node stays up and every answer is exact."""
        topic, parts = "dupes", 2
        big = 2 ** 63 - 1
        for p in range(parts):
            self.produce(topic, [(None, "d%d-%d" % (p, i)) for i in range(40)], partition=p)
        want = kafka_offsets(self.bootstrap, topic)
        c = self.client(self.n)
        cases = [(("offset", big), {0: big, 1: big}, {}),
                 (("positions", {0: big, 1: 39}), {0: big, 1: 40}, {1: [39]}),
                 (("last", big), {0: 40, 1: 40}, want),
                 (("timestamp", 2 ** 62), {0: 40, 1: 40}, {}),
                 (("positions", [(0, 30), (0, 2), (1, 38)]), {0: 40, 1: 40},
                  {0: list(range(30, 40)), 1: [38, 39]}),
                 (("positions", []), {0: 40, 1: 40}, {})]
        for start, live_want, recs in cases:
            sub = c.subscribe(topic, "*", start=start)
            frames, live = c.until_live(sub.feed)
            got = {}
            for f in frames:
                self.assertEqual(f.type, wire.MESSAGE, (start, f))
                got.setdefault(f.partition, []).append(f.offset)
            self.assertEqual((got, live.position_map()), (recs, live_want), start)
            c.unsubscribe(sub.feed)
            c.pending.clear()
        # Before 1970: every record (the first at or after it).
        sub = c.subscribe(topic, "*", start=("timestamp", -5))
        frames, live = c.until_live(sub.feed)
        self.assertEqual(live.position_map(), {0: 40, 1: 40})
        self.assertTrue(all(f.type == wire.MESSAGE for f in frames))
        # The subscription from the largest offset stays silent as records come.
        sub2 = c.subscribe(topic, "k-big", start=("offset", big))
        c.until_live(sub2.feed)
        self.produce(topic, [("k-big", "after")])
        got = c.messages(1, feed=sub.feed)
        self.assertEqual(got[0].value, b"after")
        self.assertEqual([f for f in c.collect(0.3) if f.type == wire.MESSAGE and f.feed == sub2.feed], [])

    # ------------------------------------------------------- retention

    def test_retention_deletes_under_parked_and_reading_catch_ups(self):
        """Clients catching up from the beginning and from positions, some
        parked (they read nothing for a while), while 6 MB more go to the
        partition (the mock keeps 5 MB): the log start passes them. Each
        gets its records in order, one DROPPED with the exact number of
        offsets it asked for that Kafka no longer had, right at the gap,
        then the rest: MESSAGEs plus DROPPED cover every offset from its
        start to the end exactly."""
        topic = "retain"
        # Its own node: clients wait their turn to be read, and those that
        # went live before the deletion must not be closed as slow meanwhile.
        n = self.node(self.bootstrap, ["--out-soft-limit", "65536", "--slow-timeout-ms", "120000"])
        self.produce(topic, [(None, "%05d-%s" % (i, "a" * 2000)) for i in range(2000)], partition=0)
        starts = [("beginning",), ("positions", {0: 300}), ("offset", 1200), ("beginning",), ("offset", 5)]
        clients = []
        for i, st in enumerate(starts):
            c = self.client(n, rcvbuf=4096)
            sub = c.subscribe(topic, "*", start=st)
            first = c.messages(1 + 37 * i, timeout=30, feed=sub.feed)   # a few, then nothing for a while
            clients.append((c, sub, st, first))
        n.wait_stats(lambda s: s["catchup"]["parked"] >= 3, timeout=30, what="catch-ups parked")
        self.produce(topic, [(None, "%05d-%s" % (i, "b" * 2000)) for i in range(2000, 5000)], partition=0)
        want = kafka_offsets(self.bootstrap, topic)[0]
        lo, end = want[0], want[-1] + 1
        self.assertGreater(lo, 1300, "the mock deleted past every client's position")
        dropped_to = 0
        for c, sub, st, first in clients:
            frames, live = c.until_live(sub.feed, timeout=60)
            frames = first + frames
            start = {"beginning": 0, "positions": 300, "offset": st[-1] if st[0] == "offset" else 0}[st[0]]
            drops = [(i, f.count) for i, f in enumerate(frames) if f.type == wire.DROPPED]
            if not drops:
                # Done before the log start passed it (its LIVE at the end
                # it saw): the live records after, which flow control may
                # drop (it read nothing meanwhile), counted exactly.
                offs = [f.offset for f in frames]
                self.assertEqual(offs, list(range(start, live.position_map()[0])), st)
                got, lost = 0, 0
                while live.position_map()[0] + got + lost < end:
                    f = c.expect(None, timeout=30, match=lambda f: f.type in (wire.MESSAGE, wire.DROPPED))
                    if f.type == wire.MESSAGE:
                        self.assertEqual(f.offset, live.position_map()[0] + got + lost, st)
                        got += 1
                    else:
                        lost += f.count
                continue
            dropped_to += 1
            self.assertEqual(len(drops), 1, "one DROPPED for %r: %r" % (st, drops))
            at, count = drops[0]
            before = [f.offset for f in frames[:at]]
            self.assertEqual(before, list(range(start, start + len(before))), st)
            self.assertEqual(count, lo - (start + len(before)), "DROPPED counts the offsets gone (%r)" % (st,))
            self.assertEqual([f.offset for f in frames[at + 1:]], want, st)
            self.assertEqual(live.position_map(), {0: end})
        self.assertGreaterEqual(dropped_to, 2, "the clients from the beginning were passed by the log start")

    # --------------------------------------------------------- shutdown

    def test_sigterm_during_many_catch_ups(self):
        """SIGTERM while catch-ups are resolving, reading and parked (one
        reader): the node sends GOAWAY, exits 0 within its drain
        timeout, with no sanitizer report."""
        topic = "quitall"
        n = self.node(self.bootstrap, ["--catchup-readers", "1", "--drain-timeout-ms", "1000",
                                       "--out-soft-limit", "65536"])
        for p in range(3):
            self.produce(topic, [(None, "%05d-%s" % (i, "t" * 1000)) for i in range(2000)], partition=p)
        clients = []
        for i in range(12):
            c = self.client(n, rcvbuf=4096 if i % 2 else None)
            start = [("beginning",), ("last", 1500), ("offset", 10), ("positions", {0: 5, 2: 7})][i % 4]
            c.subscribe(topic, "*" if i % 3 else "k%d" % i, start=start)
            clients.append(c)
        # Two that read (slowly), so readers are at work as the signal comes.
        readers = [Reader(n, topic, "*", ("beginning",), slow=True) for _ in range(2)]
        self.addCleanup(lambda: [r.close() for r in readers])
        n.wait_stats(lambda st: st["catchup"]["parked"] >= 1 and st["catchup"]["reading"] >= 1, timeout=20,
                     what="catch-ups parked and reading")
        # And some whose start is being looked up as the signal comes.
        for i in range(4):
            c = self.client(n)
            c.send(wire.SUBSCRIBE, 99, topic, None, wire.encode_start(("beginning",)))
            clients.append(c)
        t0 = time.monotonic()
        n.stop(timeout=10)
        self.assertLess(time.monotonic() - t0, 4.0, "exit within about the drain timeout")


def harness_produce(cl, topic, records, **kw):
    harness_produce_raw(cl.kafka.bootstrap, topic, records, **kw)


def check_reader(test, r, want, known_start):
    AdversarialCatchupTest.check_reader(test, r, want, known_start)


class RelayCatchupTest(TestCase):
    """Catch-ups on a relay node of a two-node cluster (the owner elsewhere),
    while records flow: across the end of the owner (kill -9, SIGTERM), with
    a loss relayed, before the owner knows where it reads."""

    def relay_catch_ups_across(self, disturb, takeover=True, **cluster_kw):
        """Catch-ups on n2 (fast and slow, every key and one key, from the
        beginning, an offset, positions, the last N) while records flow and
        disturb(cluster, producer) happens (the owner n1 ends: then n2 takes over);
        more start as it happens and after. Each is exact against Kafka."""
        topic, parts = "rel", 3
        cl = self.cluster({topic: parts}, nodes=2, node_args=CLUSTER_ARGS, haproxy=False, **cluster_kw)
        n1, n2 = cl.node("n1"), cl.node("n2")
        for p in range(parts):
            harness_produce(cl, topic, [("c%d" % (i % 5), "%d-%05d-%s" % (p, i, "r" * 200)) for i in range(1500)],
                            partition=p)
        owner_c = self.client(n1)
        owner_c.subscribe(topic, "*")
        owner_c.subscribe(topic, "c1")
        cl.wait(lambda: cl.owner(topic, None) == "n1" and cl.owner(topic, "c1") == "n1", 15, "n1 owns the feeds")
        relay_c = self.client(n2)
        relay_c.subscribe(topic, "*")   # n2 relays the feed
        prod = Producer(cl.kafka.bootstrap, topic, ["c1", "c2", "c3", "c4"])
        self.addCleanup(prod.stop)
        kp = java_partition(b"c1", parts)
        specs = [("*", ("beginning",), False), ("c1", ("beginning",), False), ("*", ("offset", 700), True),
                 ("c1", ("positions", {kp: 100}), True), ("*", ("positions", {0: 1400, 2: 3}), False),
                 ("c1", ("last", 50), False)]
        readers = [Reader(n2, topic, k, s, slow=slow) for k, s, slow in specs]
        wait_until(lambda: any(r.live is not None for r in readers), 30, "a catch-up on the relay LIVE")
        # More catch-ups as the owner dies.
        readers += [Reader(n2, topic, k, s, slow=slow) for k, s, slow in specs[:3]]
        disturb(cl, prod)
        if takeover:
            cl.wait(lambda: cl.owner(topic, None) == "n2" and cl.owner(topic, "c1") == "n2", 20, "n2 took over")
        readers += [Reader(n2, topic, k, s, slow=slow) for k, s, slow in specs[3:]]
        wait_until(lambda: all(r.live is not None or r.done.is_set() for r in readers), 60, "every client LIVE")
        prod.stop()
        every = kafka_offsets(cl.kafka.bootstrap, topic)
        keyed = kafka_offsets(cl.kafka.bootstrap, topic, "c1")
        for r in readers:
            r.target = ends_of(every, parts) if r.key == "*" else {kp: keyed[kp][-1] + 1}
        try:
            wait_until(lambda: all(r.done.is_set() for r in readers), 60, "every client at the log end")
        except AssertionError:
            self.fail("clients short of the log ends:\n%s" % "\n".join(
                r.describe() for r in readers if not r.done.is_set()))
        finally:
            for r in readers:
                r.close()
        for r in readers:
            want = every if r.key == "*" else {kp: keyed[kp]}
            check_reader(self, r, want, asked_positions(r.start, want))

    def test_relay_catch_ups_across_a_kill9_of_the_owner(self):
        self.relay_catch_ups_across(lambda cl, prod: cl.node("n1").kill9())

    def test_relay_catch_ups_across_a_sigterm_of_the_owner(self):
        def stop(cl, prod):
            n1 = cl.node("n1")
            n1.stop()           # exits 0, with no sanitizer report; hands its feeds over
            n1.killed = True    # gone on purpose: the cluster's waits do not count it
        self.relay_catch_ups_across(stop)

    def test_relay_catch_ups_across_a_cut_of_the_relay_from_redis(self):
        """The relay misses batches while its link to Redis is cut, then
        reads the gap from Kafka (a repair) as catch-ups join its feed."""
        def cut(cl, prod):
            p = cl.proxy("n2")
            p.cut()
            wait_until(lambda: cl.node("n2").stats()["redis"] != "connected", 10, "n2 cut off")
            sent = prod.sent
            wait_until(lambda: prod.sent >= sent + 300, 10, "records relayed while n2 is cut off")
            p.heal()
            wait_until(lambda: cl.node("n2").stats()["redis"] == "connected", 10, "n2 back")
            cl.node("n2").proc.wait_log("the relay skipped records", timeout=20)
        self.relay_catch_ups_across(cut, takeover=False, redis_proxy=True)

    def test_a_loss_relayed_while_another_partition_catches_up_is_reported(self):
        """Records lost in Kafka before the owner read them reach relays as
        a DROPPED (PROTOCOL.md 3.11: "subscribers on every node get it").
        A subscription on the relay whose partition 0 follows the live feed
        while its partition 1 still catches up must get it too: for every
        partition, MESSAGEs plus DROPPED counts cover every offset from its
        start ("No DROPPED means nothing was lost").

        The owner (n1) is paused while 7 MB go to partition 0 (the mock
        keeps 5 MB), so on resuming it finds its position deleted and
        relays DROPPED(lost). The client on n2 reads nothing meanwhile (its
        queue is full of another feed's catch-up), so its partition 1 is
        parked, unjoined."""
        args = ["--lease-ms", "30000", "--node-ttl-ms", "30000", "--out-soft-limit", "65536",
                "--out-hard-limit", "67108864"]
        cl = self.cluster({"lossy": 2, "filler": 3}, nodes=2, node_args=args, haproxy=False)
        n1, n2 = cl.node("n1"), cl.node("n2")
        bs = cl.kafka.bootstrap
        harness_produce_raw(bs, "lossy", [(None, "%05d-%s" % (i, "h" * 2000)) for i in range(2000)], partition=1)
        for p in range(3):
            harness_produce_raw(bs, "filler", [(None, "%05d-%s" % (i, "f" * 2000)) for i in range(2400)],
                                partition=p)
        o = self.client(n1)
        o.subscribe("lossy", "*")
        cl.wait(lambda: cl.owner("lossy", None) == "n1", 15, "n1 owns lossy/*")
        relay = self.client(n2)
        relay.subscribe("lossy", "*")
        x = self.client(n2, rcvbuf=4096)
        x.subscribe("filler", "*", start=("beginning",))
        n2.wait_stats(lambda st: st["catchup"]["parked"] >= 1, 20, "the filler's catch-up parked")
        sub = x.subscribe("lossy", "*", start=("positions", {1: 0}))   # partition 0: live, from 0
        n1.pause()
        harness_produce_raw(bs, "lossy", [(None, "%05d-%s" % (i, "L" * 2000)) for i in range(3500)], partition=0)
        n1.resume()
        lost = relay.expect(wire.DROPPED, timeout=30).count
        self.assertGreater(lost, 0)
        received, dropped, live = 0, 0, None
        quiet = None
        while live is None or received + dropped < 5500:
            try:
                f = x.read_frame(timeout=0.5)
            except TimeoutError:
                if live is not None and quiet is not None and time.monotonic() - quiet > 2:
                    break
                quiet = quiet or time.monotonic()
                continue
            quiet = None
            if f.type not in (wire.MESSAGE, wire.DROPPED, wire.LIVE) or f.feed != sub.feed:
                continue
            if f.type == wire.MESSAGE:
                received += 1
            elif f.type == wire.DROPPED:
                dropped += f.count
            else:
                live = f.position_map()
        self.assertEqual(live, {0: 3500, 1: 2000})
        self.assertEqual(received + dropped, 3500 + 2000,
                         "records received (%d) and DROPPED counts (%d) cover every offset; the relay's live "
                         "subscriber got DROPPED(%d)" % (received, dropped, lost))

    def test_a_relay_catch_up_while_the_owner_looks_up_its_start(self):
        """A catch-up on a relay whose owner has not yet found where its
        live feed starts (its ListOffsets answered with errors a few times,
        retried): the relay knows no live position, so the catch-up joins
        at the log end it read to; the owner then starts at a later log
        end. Every record from the start must still come once: no gap
        between LIVE's position and the first live record."""
        kafka = harness_mock_kafka({"race": 1}, list_offsets_errors=12)
        self.addCleanup(kafka.stop)
        cl = self.cluster(nodes=2, node_args=CLUSTER_ARGS, haproxy=False, kafka=kafka)
        n1, n2 = cl.node("n1"), cl.node("n2")
        harness_produce_raw(kafka.bootstrap, "race", [(None, "h%05d" % i) for i in range(500)], partition=0)
        prod = Producer(kafka.bootstrap, "race", ["a", "b"])
        self.addCleanup(prod.stop)
        wait_until(lambda: prod.sent >= 200, 10, "records flowing")
        o = self.client(n1)
        o.send(wire.SUBSCRIBE, 1, "race", None)     # n1 owns the feed, still looking up its start
        cl.wait(lambda: cl.owner("race", None) == "n1", 15, "n1 owns race/*")
        x = self.client(n2)
        sub = x.subscribe("race", "*", start=("positions", {0: 0}))
        frames, live = x.until_live(sub.feed, timeout=30)
        o.expect(wire.SUBSCRIBED, timeout=30)
        wait_until(lambda: prod.sent >= 3000, 20, "more records")
        prod.stop()
        want = kafka_offsets(kafka.bootstrap, "race")[0]
        got = [f.offset for f in frames if f.type == wire.MESSAGE]
        self.assertEqual([f for f in frames if f.type == wire.DROPPED], [])
        after = []
        while (got + after)[-1:] != want[-1:]:
            try:
                after.append(x.expect(wire.MESSAGE, timeout=3, match=lambda f: f.feed == sub.feed).offset)
            except TimeoutError:
                break
        self.assertEqual([f for f in x.pending if f.type == wire.DROPPED], [])
        self.assertEqual(after[:1], [live.position_map()[0]],
                         "the first live record is at LIVE's position %r (catch-up ended at %s)"
                         % (live.position_map(), got[-1:]))
        self.assertEqual(got + after, want)


class GrowingTopicTest(TestCase):
    """On a real Apache Kafka (the mock cannot add partitions)."""

    def test_a_topic_that_grows_during_a_catch_up(self):
        """An every-key catch-up and an exact-key one (their clients read
        nothing for a while, so they are parked) while their topic grows
        from 2 to 4 partitions: LIVE then names the partitions the feeds
        read, the new ones at 0 (the feeds read them from their beginning),
        with no out-of-bounds read (ASan: heap-buffer-overflow in
        sub_send_live)."""
        import kafka_real
        kafka = kafka_real.ApacheKafka(1)
        self.addCleanup(kafka.stop)
        kafka.create_topic("grow", 2)
        harness_produce_raw(kafka.bootstrap, "grow", [(None, "%05d-%s" % (i, "g" * 2000)) for i in range(3000)],
                            partition=0)
        # An exact key on partition 0 of 2 that maps to partition 2 of 4.
        self.assertEqual((java_partition(b"mover1", 2), java_partition(b"mover1", 4)), (0, 2))
        harness_produce_raw(kafka.bootstrap, "grow", [("mover1", "%05d-%s" % (i, "m" * 2000)) for i in range(3000)],
                            partition=0)
        n = self.node(kafka.bootstrap, ["--metadata-refresh-ms", "200", "--out-soft-limit", "65536"])
        c = self.client(n, rcvbuf=4096)
        sub = c.subscribe("grow", "*", start=("beginning",))
        self.assertEqual(sub.partitions, [0, 1])
        k = self.client(n, rcvbuf=4096)
        ksub = k.subscribe("grow", "mover1", start=("beginning",))
        self.assertEqual(ksub.partitions, [0])
        n.wait_stats(lambda st: st["catchup"]["parked"] >= 2, 30, "the catch-ups parked")
        r = kafka_real.script("tool", "topics", "--bootstrap-server", kafka.bootstrap, "--alter", "--topic", "grow",
                              "--partitions", "4", timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        n.proc.wait_log("grew from 2 to 4", timeout=30)
        kframes, klive = k.until_live(ksub.feed, timeout=60)
        frames, live = c.until_live(sub.feed, timeout=60)
        self.assertEqual([f.offset for f in frames if f.type == wire.MESSAGE and f.partition == 0],
                         list(range(6000)))
        problems = []
        if live.position_map() != {0: 6000, 1: 0, 2: 0, 3: 0}:
            problems.append("every-key LIVE %r, not {0: 6000, 1: 0, 2: 0, 3: 0}" % live.position_map())
        # The key's feed now reads partition 2, from its beginning: LIVE
        # says where this subscription stands there.
        if klive.position_map() != {2: 0}:
            problems.append("exact-key LIVE %r, not {2: 0}" % klive.position_map())
        self.assertEqual(problems, [], "\n".join(problems))
