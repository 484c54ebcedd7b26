"""test_slow.py -- slow consumers: records dropped over the soft limit, closed after the slow timeout.

A slow client here has a tiny SO_RCVBUF and stops reading while megabytes
of large records flow; a fast client on the same feed reads everything. The
records are produced in batches smaller than the soft limit, and the fast
client reads each batch before the next, so only the stalled client ever
has more than a batch queued at the node. The heartbeat timeout is raised
so that a client that is not reading (and so not answering PINGs) is dealt
with by the slow-consumer rules alone.
"""

import time

from harness import TestCase, MockKafka, class_fixture, produce
import wire
from wire import DROPPED, MESSAGE

RECORD = 50000            # bytes of value per record
BATCH = 8                 # records per produce (400 kB < the soft limit)
BATCHES = 15              # 6 MB in all
SOFT = 524288
TINY_RCVBUF = 4096


def value(i):
    return "%06d" % i + "x" * (RECORD - 6)


class SlowConsumerTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = class_fixture(cls, MockKafka({"bulk": 1, "bulk2": 1, "onebatch": 1}))

    def produce_batch(self, topic, first):
        produce(self.kafka.bootstrap, topic, [("big", value(i)) for i in range(first, first + BATCH)])

    def test_drop_then_resume(self):
        node = self.node(self.kafka.bootstrap, ["--out-soft-limit", SOFT, "--out-hard-limit", 1 << 30,
                                                "--slow-timeout-ms", 600000, "--heartbeat-timeout-ms", 600000])
        fast = self.client(node)
        slow = self.client(node, rcvbuf=TINY_RCVBUF)
        fs = fast.subscribe("bulk", "*")
        ss = slow.subscribe("bulk", "*")
        self.assertEqual(fs.feed, ss.feed)

        total = 0
        for b in range(BATCHES):
            self.produce_batch("bulk", total)
            got = fast.messages(BATCH, timeout=20, feed=fs.feed)
            self.assertEqual([m.value[:6] for m in got],
                             [b"%06d" % i for i in range(total, total + BATCH)])
            total += BATCH
        self.assertEqual([f for f in fast.collect(0.1) if f.type == DROPPED], [],
                         "the fast client had records dropped")

        # the slow client resumes reading: what it gets plus what it is
        # told was dropped adds up to what was produced
        received, dropped = [], 0

        def read_slow(until, timeout):
            nonlocal dropped
            deadline = time.monotonic() + timeout
            while not until():
                try:
                    f = slow.read_frame(timeout=max(0.01, min(1.0, deadline - time.monotonic())))
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        return False
                    continue
                if f.type == MESSAGE and f.feed == ss.feed:
                    received.append(f.value[:6])
                elif f.type == DROPPED and f.feed == ss.feed:
                    self.assertGreater(f.count, 0)
                    dropped += f.count
                else:
                    self.fail("unexpected frame %r" % f)
            return True

        # until the numbers add up, or the stream has been quiet for a
        # second (a node may send DROPPED only ahead of the next record)
        last = [None, time.monotonic()]

        def settled():
            state = (len(received), dropped)
            if state != last[0]:
                last[0], last[1] = state, time.monotonic()
            return len(received) + dropped == total or time.monotonic() - last[1] > 1.0

        self.assertTrue(read_slow(settled, 30), "slow client stuck at %d received + %d dropped of %d"
                        % (len(received), dropped, total))
        # a trailer, produced once the slow client reads again, arrives
        produce(self.kafka.bootstrap, "bulk", [("big", "end")])
        total += 1
        self.assertEqual(fast.messages(1, feed=fs.feed)[0].value, b"end")
        ok = read_slow(lambda: received[-1:] == [b"end"] and len(received) + dropped == total, 15)
        self.assertTrue(ok, "slow client: %d received + %d dropped != %d produced (end seen: %s)"
                        % (len(received), dropped, total, b"end" in received))
        self.assertGreater(dropped, 0, "nothing was dropped for the stalled client")
        self.assertEqual(received, sorted(received), "records out of order")
        st = node.stats()
        self.assertGreaterEqual(st["counters"]["dropped"], dropped)
        self.assertEqual(st["counters"]["slow_closed"], 0)
        self.assertEqual(st["connections"], 2)

    def test_never_reading_client_is_closed(self):
        node = self.node(self.kafka.bootstrap, ["--out-soft-limit", SOFT, "--out-hard-limit", 1 << 30,
                                                "--slow-timeout-ms", 500, "--heartbeat-timeout-ms", 600000])
        fast = self.client(node)
        slow = self.client(node, rcvbuf=TINY_RCVBUF)
        fs = fast.subscribe("bulk2", "*")
        slow.subscribe("bulk2", "*")
        self.assertEqual(node.stats()["counters"]["slow_closed"], 0)

        total = 0
        closed = False
        for b in range(BATCHES):
            self.produce_batch("bulk2", total)
            fast.messages(BATCH, timeout=20, feed=fs.feed)
            total += BATCH
            if node.stats()["counters"]["slow_closed"] >= 1:
                closed = True
                break
        if not closed:
            node.wait_stats(lambda st: st["counters"]["slow_closed"] >= 1, timeout=5,
                            what="the never-reading client closed as slow")
        # closed once its ERROR is written, or 2 s after (it reads nothing)
        st = node.wait_stats(lambda st: st["connections"] == 1 and st["subscriptions"] == 1, timeout=6,
                             what="only the fast client left")
        self.assertEqual(st["counters"]["slow_closed"], 1)

        # the slow socket ends (after whatever was already in flight)
        frames = slow.expect_closed(timeout=10)
        errors = [f for f in frames if f.type == wire.ERROR]
        for e in errors:
            self.assertEqual(e.code, wire.E_SLOW_CONSUMER, e)

        # the fast client is unaffected
        produce(self.kafka.bootstrap, "bulk2", [("big", "after")])
        self.assertEqual(fast.messages(1, feed=fs.feed)[0].value, b"after")
        self.assertFalse(fast.closed)

    def test_one_batch_over_the_hard_limit_is_not_slowness(self):
        """The node is paused while 1 MB is written: when it wakes it reads
        them in one batch, a block above the 256 kB hard limit. A client
        that reads as fast as it can gets every record; the batch alone is
        not slowness (the node once closed every subscriber of the feed)."""
        node = self.node(self.kafka.bootstrap, ["--out-soft-limit", 65536, "--out-hard-limit", 262144])
        c = self.client(node)
        sub = c.subscribe("onebatch", "*")
        node.pause()
        try:
            produce(self.kafka.bootstrap, "onebatch", [("k", "%04d-%s" % (i, "b" * 2000)) for i in range(500)])
        finally:
            node.resume()
        got = c.messages(500, timeout=30, feed=sub.feed)
        self.assertEqual([m.offset for m in got], list(range(500)))
        st = node.stats()
        self.assertEqual(st["counters"]["slow_closed"], 0)
        self.assertEqual(st["counters"]["dropped"], 0)

    def test_slow_consumer_reads_its_error_at_the_end(self):
        """A client closed as a slow consumer gets ERROR SLOW_CONSUMER right
        after the frame that was being written, then a clean end of stream
        (no reset), however much was queued for it: it can tell that close
        from a crash (it once got a reset and never the ERROR)."""
        node = self.node(self.kafka.bootstrap, ["--out-soft-limit", SOFT, "--out-hard-limit", 1 << 30,
                                                "--slow-timeout-ms", 500, "--heartbeat-timeout-ms", 600000])
        slow = self.client(node, rcvbuf=TINY_RCVBUF)
        slow.subscribe("bulk2", "*")
        total = 0
        while node.stats()["counters"]["dropped"] == 0:     # the node's queue is above the soft limit
            self.assertLess(total, 40 * BATCH, "never above the soft limit")
            self.produce_batch("bulk2", total)
            total += BATCH
        node.wait_stats(lambda st: st["counters"]["slow_closed"] == 1, timeout=10,
                        what="the client closed as slow after --slow-timeout-ms")
        frames = slow.expect_closed(timeout=20)
        self.assertEqual(slow.close_reason, "EOF")
        self.assertGreater(len(frames), 0)
        last = frames[-1]
        self.assertEqual((last.type, last.req_id, last.code), (wire.ERROR, 0, wire.E_SLOW_CONSUMER), frames[-3:])
        self.assertTrue(all(f.type in (MESSAGE, DROPPED, wire.PING) for f in frames[:-1]))
