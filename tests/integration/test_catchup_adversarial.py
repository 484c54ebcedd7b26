"""test_catchup_adversarial.py -- catch-ups (PROTOCOL.md 5.8) under attack: crowds, hang-ups, odd starts, limits.

Every expectation is computed from what Kafka holds (read back with kcat):
per partition, a subscription gets each offset from its start on exactly
once, in offset order, whatever the other clients do meanwhile.
"""

import random
import socket
import threading
import time

from harness import NodeCase, consume, java_partition, wait_until
import wire


def kafka_offsets(bootstrap, topic):
    """{partition: [offset, ...]} in offset order, as Kafka has them."""
    out = {}
    for r in consume(bootstrap, topic):
        out.setdefault(r["partition"], []).append(r["offset"])
    for p in out:
        out[p].sort()
    return out


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
    TOPICS = {"crowd": 3, "notread": 4, "hard": 1, "mixed": 2, "rare": 2, "churn": 2, "dupes": 2}
    NODE_ARGS = ["--out-soft-limit", "65536", "--out-hard-limit", "1048576", "--catchup-readers", "2"]

    def test_positions_naming_a_partition_the_feed_does_not_read_are_refused(self):
        """PROTOCOL.md 3.3/4: a POSITIONS list naming a partition the feed
        does not read is refused with INVALID_ARG: a partition past the
        topic's count on an every-key feed, or another partition than the
        key's on an exact-key feed. The connection goes on."""
        key = "nr-key"
        kp = wire_partition(key, 4)
        other = (kp + 1) % 4
        c = self.client(self.n)
        accepted = []
        for topic, k, positions in (("notread", "*", {0: 0, 99: 5}),
                                    ("notread", key, {other: 0}),
                                    ("notread", key, {kp: 0, other: 3})):
            try:
                sub = c.subscribe(topic, k, start=("positions", positions))
            except wire.ServerError as e:
                self.assertEqual(e.code, wire.E_INVALID_ARG, e)
                continue
            frames, live = c.until_live(sub.feed)
            c.unsubscribe(sub.feed)
            accepted.append("%s/%s from %r: SUBSCRIBED partitions %r, LIVE %r"
                            % (topic, k, positions, sub.partitions, live.position_map()))
        c.ping(7)
        self.assertEqual(accepted, [], "accepted instead of refused with INVALID_ARG")

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
