"""test_catchup.py -- SUBSCRIBE with a start position: history from Kafka, then the live feed, joined by offsets (PROTOCOL.md 5.8).

One node over the mock Kafka. Every expectation is computed from what Kafka
holds (read back with kcat), never written down by hand.
"""

import threading

from harness import NodeCase, consume, wait_until
import wire


def kafka_records(bootstrap, topic):
    """{partition: [record dict, ...]} in offset order, as Kafka has them."""
    out = {}
    for r in consume(bootstrap, topic):
        out.setdefault(r["partition"], []).append(r)
    for p in out:
        out[p].sort(key=lambda r: r["offset"])
    return out


def log_ends(records, partitions):
    """{partition: the offset after its last record} (0 when empty)."""
    return {p: (records[p][-1]["offset"] + 1 if records.get(p) else 0) for p in range(partitions)}


def by_partition(frames):
    """{partition: [offset, ...]} of the MESSAGE frames, in arrival order."""
    out = {}
    for f in frames:
        if f.type == wire.MESSAGE:
            out.setdefault(f.partition, []).append(f.offset)
    return out


class CatchupTest(NodeCase):
    TOPICS = {"hist": 4, "wide": 4, "ts": 2, "busy": 3, "slow": 2, "many": 3, "gone": 2, "past": 2, "quit": 2}
    NODE_ARGS = ["--out-soft-limit", "65536", "--out-hard-limit", "1048576", "--catchup-readers", "1",
                 "--log-level", "debug"]

    def test_from_the_beginning_then_live(self):
        """An exact key from the beginning: every record of the key in
        offset order, LIVE at the partition's end, then the live records,
        none twice."""
        self.produce("hist", [("k%d" % (i % 3), "v%d" % i) for i in range(30)])
        want = kafka_records(self.bootstrap, "hist")
        c = self.client(self.n)
        sub = c.subscribe("hist", "k1", start=("beginning",))
        self.assertEqual(len(sub.partitions), 1)
        p = sub.partitions[0]
        frames, live = c.until_live(sub.feed)
        self.assertEqual([(f.offset, f.value) for f in frames],
                         [(r["offset"], r["value"].encode()) for r in want[p] if r["key"] == "k1"])
        self.assertEqual(live.position_map(), {p: log_ends(want, 4)[p]})
        self.produce("hist", [("k1", "after-%d" % i) for i in range(3)])
        got = c.messages(3, feed=sub.feed)
        self.assertEqual([m.value for m in got], [b"after-0", b"after-1", b"after-2"])
        self.assertEqual([m.offset for m in got], list(range(log_ends(want, 4)[p], log_ends(want, 4)[p] + 3)))
        self.assertEqual(c.collect(0.2), [], "nothing twice")

    def test_positions_per_partition(self):
        """An every-key feed resumed from positions: each listed partition
        from its offset, a partition not listed live from the log end;
        LIVE says where each partition stands."""
        self.produce("wide", [("w%d" % i, "v%d" % i) for i in range(60)])
        want = kafka_records(self.bootstrap, "wide")
        ends = log_ends(want, 4)
        listed = [p for p in range(4) if len(want.get(p, [])) >= 2][:3]
        self.assertGreaterEqual(len(listed), 2, want)
        positions = {p: want[p][len(want[p]) // 2]["offset"] for p in listed}
        c = self.client(self.n)
        sub = c.subscribe("wide", "*", start=("positions", positions))
        frames, live = c.until_live(sub.feed)
        expect = {p: [r["offset"] for r in want[p] if r["offset"] >= positions[p]] for p in listed}
        self.assertEqual(by_partition(frames), expect)
        self.assertEqual(live.position_map(), ends)

    def test_last_n(self):
        """LAST N: the N records before each partition's end (kcat's -o -N),
        of every key. (TIMESTAMP is shown on Apache Kafka: the mock's
        ListOffsets by time does not follow Kafka's.)"""
        self.produce("ts", [("t%d" % i, "a%d" % i) for i in range(40)])
        want = kafka_records(self.bootstrap, "ts")
        c = self.client(self.n)
        sub = c.subscribe("ts", "*", start=("last", 3))
        frames, live = c.until_live(sub.feed)
        self.assertEqual(by_partition(frames), {p: [r["offset"] for r in want[p][-3:]] for p in want})
        self.assertEqual(live.position_map(), log_ends(want, 2))

    def test_join_under_load_loses_and_repeats_nothing(self):
        """Records flow the whole time: a catch-up from the beginning joins
        the live feed a live subscriber already holds, and gets every
        record of every partition exactly once, in offset order."""
        live_c = self.client(self.n)
        live_sub = live_c.subscribe("busy", "*")
        pub = self.client(self.n)
        stop = threading.Event()
        sent = []

        def publish():
            i = 0
            while not stop.is_set() or i < 400:
                pub.publish("busy", "b%d" % (i % 17), "v%d" % i)
                sent.append(i)
                i += 1
                if i >= 3000:
                    break
        t = threading.Thread(target=publish)
        t.start()
        try:
            wait_until(lambda: len(sent) >= 200, 30, "200 records published")
            c = self.client(self.n)
            sub = c.subscribe("busy", "*", start=("beginning",))
            frames, live = c.until_live(sub.feed, timeout=60)
        finally:
            stop.set()
            t.join(60)
        want = kafka_records(self.bootstrap, "busy")
        total = sum(len(v) for v in want.values())
        self.assertEqual(total, len(sent))
        rest = c.messages(total - sum(1 for f in frames if f.type == wire.MESSAGE), timeout=30, feed=sub.feed)
        got = by_partition(frames + rest)
        self.assertEqual(got, {p: [r["offset"] for r in want[p]] for p in want})
        self.assertEqual(c.collect(0.3), [], "nothing twice")
        for p, at in live.position_map().items():
            self.assertLessEqual(at, log_ends(want, 3)[p])
        first = live_sub.live.position_map()
        self.assertEqual(by_partition(live_c.messages(sum(len([r for r in want[p] if r["offset"] >= first[p]])
                                                          for p in want), timeout=30, feed=live_sub.feed)),
                         {p: [r["offset"] for r in want[p] if r["offset"] >= first[p]] for p in want
                          if any(r["offset"] >= first[p] for r in want[p])})

    def test_a_client_that_does_not_read_loses_nothing(self):
        """A catch-up far bigger than the soft limit and the socket buffers,
        to a client that reads nothing for a while: it waits (parked)
        instead of dropping, and the client gets every record once it
        reads, no DROPPED. (The mock keeps 5 MB per partition: two
        partitions of 4 MB.)"""
        value = "x" * 2000
        for p in range(2):
            self.produce("slow", [(None, "%05d-%s" % (i, value)) for i in range(2000)], partition=p)
        want = kafka_records(self.bootstrap, "slow")
        self.assertEqual({p: len(want[p]) for p in want}, {0: 2000, 1: 2000})
        c = self.client(self.n, rcvbuf=4096)
        sub = c.subscribe("slow", "*", start=("beginning",))
        self.n.wait_stats(lambda st: st["catchup"]["parked"] >= 1, timeout=20, what="the catch-up parked")
        frames, _ = c.until_live(sub.feed, timeout=60)
        self.assertEqual({f.type for f in frames}, {wire.MESSAGE})
        self.assertEqual(by_partition(frames), {p: [r["offset"] for r in want[p]] for p in want})
        self.assertEqual(self.n.stats()["catchup"]["parked"], 0)

    def test_records_kafka_no_longer_holds_are_dropped(self):
        """Positions below the log start (the mock keeps 5 MB per
        partition): DROPPED with the exact number of records gone, right
        before the first record Kafka still has."""
        self.produce("gone", [(None, "%05d-%s" % (i, "y" * 2000)) for i in range(3000)], partition=0)
        want = kafka_records(self.bootstrap, "gone")
        start = want[0][0]["offset"]
        self.assertGreater(start, 0, "the mock deleted the oldest records")
        c = self.client(self.n)
        sub = c.subscribe("gone", "*", start=("positions", {0: 10, 1: 0}))
        frames, live = c.until_live(sub.feed, timeout=60)
        self.assertEqual((frames[0].type, frames[0].count), (wire.DROPPED, start - 10))
        self.assertEqual(by_partition(frames[1:]), {0: [r["offset"] for r in want[0]]})
        self.assertEqual(live.position_map(), {0: 3000, 1: 0})
        self.assertEqual(self.n.stats()["counters"]["catchup_missing"] >= start - 10, True)

    def test_readers_take_turns(self):
        """--catchup-readers 1 and an every-key catch-up over three
        partitions: one reader at a time, each yielding to the others after
        its quantum, and the subscription gets every record once."""
        for p in range(3):
            self.produce("many", [(None, "p%d-%d" % (p, i)) for i in range(25000)], partition=p)
        yields = self.n.stats()["counters"]["catchup_yields"]
        c = self.client(self.n)
        sub = c.subscribe("many", "*", start=("beginning",))
        frames, live = c.until_live(sub.feed, timeout=120)
        self.assertEqual(by_partition(frames), {p: list(range(25000)) for p in range(3)})
        self.assertEqual(live.position_map(), {0: 25000, 1: 25000, 2: 25000})
        self.assertGreater(self.n.stats()["counters"]["catchup_yields"], yields)
        self.n.wait_stats(lambda st: st["catchup"]["readers"] == 0, timeout=60, what="every reader let go")

    def test_a_position_past_the_log_end_is_waited_for(self):
        """A position past a partition's end: the partition follows the live
        feed from that offset, so records below it never come."""
        self.produce("past", [("g", "v%d" % i) for i in range(5)], partition=0)
        c = self.client(self.n)
        sub = c.subscribe("past", "*", start=("positions", {0: 3, 1: 7}))
        frames, live = c.until_live(sub.feed)
        self.assertEqual([(m.partition, m.offset) for m in frames], [(0, 3), (0, 4)])
        self.assertEqual(live.position_map(), {0: 5, 1: 7})
        self.produce("past", [("x", "y%d" % i) for i in range(9)], partition=1)
        got = c.messages(2, feed=sub.feed, timeout=20)
        self.assertEqual([(m.partition, m.offset) for m in got], [(1, 7), (1, 8)])
        self.assertEqual(c.collect(0.3), [])

    def test_unsubscribe_and_hang_up_during_a_catch_up(self):
        """A catch-up cancelled half way (a client that reads nothing: it
        stays under way) leaves no reader behind, and the node serves on."""
        for p in range(2):
            self.produce("quit", [(None, "%05d-%s" % (i, "q" * 2000)) for i in range(2000)], partition=p)
        under_way = lambda st: st["catchup"]["readers"] + st["catchup"]["parked"] >= 1
        c = self.client(self.n, rcvbuf=4096)
        sub = c.subscribe("quit", "*", start=("beginning",))
        self.n.wait_stats(lambda st: st["catchup"]["parked"] >= 1, timeout=20, what="a catch-up parked")
        c.unsubscribe(sub.feed, timeout=30)
        d = self.client(self.n, rcvbuf=4096)
        d.subscribe("quit", "*", start=("beginning",))
        self.n.wait_stats(under_way, timeout=20, what="another catch-up under way")
        d.close()
        self.n.wait_stats(lambda st: st["catchup"] == {"readers": 0, "active": 0, "queued": 0, "reading": 0,
                                                       "parked": 0, "resolving": 0},
                          timeout=20, what="no catch-up left")
        e = self.client(self.n)
        s = e.subscribe("quit", "*", start=("last", 1))
        frames, _ = e.until_live(s.feed)
        self.assertEqual(sorted(f.value[:5] for f in frames), [b"01999", b"01999"])
