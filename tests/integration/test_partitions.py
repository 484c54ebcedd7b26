"""test_partitions.py -- partition targeting: murmur2 (default), crc32 and all, per topic."""

from harness import NodeCase, crc32_partition, java_partition, keys_by_partition
from wire import MESSAGE

N = 6


def other_keys(key, partition_fn):
    """(a key on key's partition, keys on every other partition)."""
    by = keys_by_partition(N, partition_fn, prefix="o")
    p = partition_fn(key, N)
    same = by[p][0]
    others = [by[q][0] for q in range(N) if q != p]
    return same, others


class PartitionTargetingTest(NodeCase):
    TOPICS = {"p6m": N, "p6c": N, "p6a": N, "p6w": N, "p6t": N}
    NODE_ARGS = ("--linger-ms", "200", "--partitioner", "p6c=crc32", "--partitioner", "p6a=all")

    def check_targeted(self, topic, key, want_partition, partitioner):
        c = self.client(self.n)
        sub = c.subscribe(topic, key)
        self.assertEqual(sub.partitions, [want_partition])
        st = self.n.stats()
        self.assertEqual(self.n.assigned(topic, st), [want_partition])
        self.assertEqual(self.n.feed(topic, key, st)["partitions"], [want_partition])
        fn = java_partition if partitioner == "murmur2_random" else crc32_partition
        same, others = other_keys(key, fn)
        recs = [(key, "m0")] + [(k, "other") for k in others] + [(same, "same-partition"), (key, "m1")]
        self.produce(topic, recs, partitioner=partitioner)
        msgs = c.messages(2, feed=sub.feed)
        self.assertEqual([(m.key, m.value, m.partition) for m in msgs],
                         [(key.encode(), b"m0", want_partition), (key.encode(), b"m1", want_partition)])
        self.assertEqual([f for f in c.collect(0.3) if f.type == MESSAGE], [])

    def test_murmur2_default_reads_one_partition(self):
        key = "user-42"
        self.check_targeted("p6m", key, java_partition(key, N), "murmur2_random")

    def test_crc32_topic(self):
        # a key whose CRC32 and murmur2 partitions differ, so a node that
        # ignored --partitioner would read the wrong partition
        key = next("c%d" % i for i in range(100)
                   if crc32_partition("c%d" % i, N) != java_partition("c%d" % i, N))
        self.check_targeted("p6c", key, crc32_partition(key, N), None)  # kcat's default: consistent_random

    def test_all_reads_every_partition_and_filters(self):
        c = self.client(self.n)
        sub = c.subscribe("p6a", "k")
        self.assertEqual(sorted(sub.partitions), list(range(N)))
        self.assertEqual(self.n.assigned("p6a"), list(range(N)))
        # the key's records on every partition (as any partitioner might put
        # them), other keys too
        for p in range(N):
            self.produce("p6a", [("k", "k%d" % p), ("not-k", "x")], partition=p)
        msgs = c.messages(N, feed=sub.feed)
        self.assertEqual(sorted((m.partition, m.value) for m in msgs),
                         [(p, b"k%d" % p) for p in range(N)])
        self.assertEqual({m.key for m in msgs}, {b"k"})
        self.assertEqual([f for f in c.collect(0.3) if f.type == MESSAGE], [])

    def test_wildcard_reads_every_partition(self):
        c = self.client(self.n)
        sub = c.subscribe("p6w", "*")
        self.assertEqual(sorted(sub.partitions), list(range(N)))
        self.assertEqual(self.n.assigned("p6w"), list(range(N)))

    def test_two_keys_two_partitions_then_release(self):
        by = keys_by_partition(N, java_partition, prefix="t")
        k1, k2 = by[1][0], by[4][0]
        c = self.client(self.n)
        s1 = c.subscribe("p6t", k1)
        s2 = c.subscribe("p6t", k2)
        self.assertEqual(self.n.assigned("p6t"), [1, 4])
        c.unsubscribe(s1.feed)
        self.n.wait_stats(lambda st: self.n.assigned("p6t", st) == [4], what="only p6t/4 assigned")
        c.unsubscribe(s2.feed)
        self.n.wait_stats(lambda st: self.n.assigned("p6t", st) == [], what="nothing of p6t assigned")


class LeaderMovingTest(NodeCase):
    """A partition whose leadership is moving, or that was created an instant
    ago, answers offset lookups with NOT_LEADER_FOR_PARTITION for a moment.
    The node retries the lookup rather than refusing the subscription."""
    TOPICS = {"moving": 2}
    KAFKA_ARGS = {"list_offsets_errors": 3}

    def test_subscribe_outlives_not_leader(self):
        c = self.client(self.n)
        sub = c.subscribe("moving", "m1")       # was refused with "Not leader for partition"
        self.assertEqual(sub.partitions, [java_partition("m1", 2)])
        self.produce("moving", [("m1", "after")])
        self.assertEqual([m.value for m in c.messages(1, feed=sub.feed)], [b"after"])
