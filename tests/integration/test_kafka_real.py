"""test_kafka_real.py -- the Kafka behaviour subway claims, shown against Apache Kafka itself (KRaft, from Maven Central).

Records are produced straight to Kafka: with Kafka's own Java console
producer (the Java client's default partitioner) and with kcat (librdkafka's
default consistent_random partitioner), never through subway.
"""

import json
import os
import signal
import threading
import time

import harness
from harness import TestCase, class_fixture, crc32_partition, java_partition, owner_node, produce, run, wait_until
from kafka_real import ApacheKafka, console_produce
import wire

KEYS = ["k%d" % i for i in range(1, 21)]


def alter_partitions(bootstrap, topic, partitions):
    """Grows a topic with Kafka's own TopicCommand."""
    lib = os.path.join(harness.REPO, ".cache", "kafka", "lib", "*")
    for cls in ("org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand"):
        r = run(["java", "-cp", lib, cls, "--bootstrap-server", bootstrap, "--alter", "--topic", topic,
                 "--partitions", str(partitions)], timeout=90)
        if r.returncode == 0:
            return
        if "ClassNotFoundException" not in r.stderr and "Could not find or load main class" not in r.stderr:
            raise AssertionError("TopicCommand --alter failed: %s" % r.stderr[-2000:])
    raise AssertionError("no TopicCommand class in the fetched Kafka")


def delete_records(bootstrap, topic, partition, before_offset):
    """Deletes the partition's records below before_offset with Kafka's own
    DeleteRecordsCommand (what retention does, on demand)."""
    lib = os.path.join(harness.REPO, ".cache", "kafka", "lib", "*")
    spec = harness.tmp_path("delete-records.json")
    with open(spec, "w") as f:
        json.dump({"version": 1, "partitions": [{"topic": topic, "partition": partition,
                                                  "offset": before_offset}]}, f)
    r = run(["java", "-cp", lib, "org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", bootstrap,
             "--offset-json-file", spec], timeout=90)
    if r.returncode != 0:
        raise AssertionError("DeleteRecordsCommand failed: %s" % r.stderr[-2000:])


def key_moving(n_from, n_to):
    """A key whose Java partition differs between the two counts."""
    for i in range(1000):
        k = "mover-%d" % i
        if java_partition(k.encode(), n_from) != java_partition(k.encode(), n_to):
            return k
    raise AssertionError("no key moves")


class RealKafkaNodeTest(TestCase):
    """One Apache Kafka broker, one subway node."""
    PLAIN_ONLY = "Apache Kafka's behaviour (the sanitizers see the same node code with the mock)"

    @classmethod
    def setUpClass(cls):
        cls.kafka = class_fixture(cls, ApacheKafka(brokers=1))
        cls.kafka.create_topic("java6", 6)
        cls.kafka.create_topic("crc4", 4)
        cls.kafka.create_topic("grow", 2)
        cls.n = class_fixture(cls, harness.Node(cls.kafka.bootstrap,
                                                ["--partitioner", "crc4=crc32", "--linger-ms", "200",
                                                 "--metadata-refresh-ms", "300", "--free-topic", "search.*",
                                                 "--free-topic-partitions", "3", "--free-topic-grace-ms", "500"]))

    def topics(self):
        return [t["topic"] for t in self.kafka.metadata()["topics"]]

    def test_free_topic_created_on_demand_and_deleted_after_grace(self):
        self.assertNotIn("search.cats", self.topics())
        c = self.client(self.n)
        s = c.subscribe("search.cats", b"tabby")
        self.assertEqual(s.partitions, [java_partition(b"tabby", 3)])
        self.assertIn("search.cats", self.topics())
        parts = [t for t in self.kafka.metadata("search.cats")["topics"] if t["topic"] == "search.cats"][0]
        self.assertEqual(len(parts["partitions"]), 3)
        console_produce(self.kafka.bootstrap, "search.cats", [("tabby", "meow"), ("siamese", "x")])
        self.assertEqual(c.messages(1, timeout=20, feed=s.feed)[0].value, b"meow")
        c.unsubscribe(s.feed)
        wait_until(lambda: "search.cats" not in self.topics(), 20, "search.cats deleted after linger + grace")

    def test_free_topic_kept_when_wanted_again_within_grace(self):
        c = self.client(self.n)
        s = c.subscribe("search.dogs", b"rex")
        c.unsubscribe(s.feed)
        self.n.wait_stats(lambda st: not any(f["topic"] == "search.dogs" for f in st["feeds"]), timeout=10,
                          what="the feed lingered and went")
        s = c.subscribe("search.dogs", b"rex")            # within the 500 ms grace
        produce(self.kafka.bootstrap, "search.dogs", [("rex", "woof")])
        self.assertEqual(c.messages(1, timeout=20, feed=s.feed)[0].value, b"woof")
        self.assertIn("search.dogs", self.topics())

    def test_java_partitioner_exact_keys_read_one_partition(self):
        subs = {}
        for k in ("k3", "k7"):
            c = self.client(self.n)
            s = c.subscribe("java6", k.encode())
            self.assertEqual(s.partitions, [java_partition(k.encode(), 6)], k)
            subs[k] = (c, s)
        wild = self.client(self.n)
        ws = wild.subscribe("java6", None)
        self.assertEqual(ws.partitions, list(range(6)))
        console_produce(self.kafka.bootstrap, "java6", [(k, "v-" + k) for k in KEYS])
        for k, (c, s) in subs.items():
            got = c.messages(1, timeout=20, feed=s.feed)
            self.assertEqual((got[0].key, got[0].value), (k.encode(), ("v-" + k).encode()))
            self.assertEqual(got[0].partition, java_partition(k.encode(), 6))
            self.assertEqual(c.collect(0.3), [], "only the key's records")
        every = wild.messages(len(KEYS), timeout=20, feed=ws.feed)
        self.assertEqual(sorted(m.key.decode() for m in every), sorted(KEYS))

    def test_exact_key_feed_fetches_only_its_partition(self):
        c = self.client(self.n)
        s = c.subscribe("java6", b"k11")
        p = java_partition(b"k11", 6)
        st = self.n.stats()
        mine = [f for f in st["feeds"] if f["topic"] == "java6" and f["key"] == "k11"]
        self.assertEqual(mine[0]["partitions"], [p])
        self.assertIn({"topic": "java6", "partition": p}, st["assigned"])
        c.unsubscribe(s.feed)
        self.n.wait_stats(lambda st: {"topic": "java6", "partition": p} not in st["assigned"]
                          or any(f["topic"] == "java6" for f in st["feeds"]), timeout=10,
                          what="partition released after the linger")

    def test_librdkafka_default_partitioner_with_crc32_topic(self):
        c = self.client(self.n)
        s = c.subscribe("crc4", b"k5")
        self.assertEqual(s.partitions, [crc32_partition(b"k5", 4)])
        produce(self.kafka.bootstrap, "crc4", [(k, "c-" + k) for k in KEYS], partitioner="consistent_random")
        got = c.messages(1, timeout=20, feed=s.feed)
        self.assertEqual((got[0].key, got[0].value), (b"k5", b"c-k5"))

    def test_unknown_topic_refused_and_not_created(self):
        c = self.client(self.n)
        with self.assertRaises(wire.ServerError) as cm:
            c.subscribe("no.such.topic", b"k")
        self.assertEqual(cm.exception.code, wire.E_UNKNOWN_TOPIC)
        names = [t["topic"] for t in self.kafka.metadata()["topics"]]
        self.assertNotIn("no.such.topic", names)

    def test_partition_growth_retargets_without_losing_the_feed(self):
        k = key_moving(2, 5)
        c = self.client(self.n)
        s = c.subscribe("grow", k.encode())
        self.assertEqual(s.partitions, [java_partition(k.encode(), 2)])
        console_produce(self.kafka.bootstrap, "grow", [(k, "before")])
        self.assertEqual(c.messages(1, timeout=20, feed=s.feed)[0].value, b"before")
        alter_partitions(self.kafka.bootstrap, "grow", 5)
        new_p = java_partition(k.encode(), 5)
        self.n.wait_stats(lambda st: any(f["topic"] == "grow" and f["partitions"] == [new_p] for f in st["feeds"]),
                          timeout=20, what="feed re-targeted to partition %d" % new_p)
        # the Java producer learns the new count on its own metadata refresh;
        # the record lands on the new partition (checked), and reaches us
        console_produce(self.kafka.bootstrap, "grow", [(k, "after")])
        got = c.messages(1, timeout=30, feed=s.feed)[0]
        self.assertEqual((got.value, got.partition), (b"after", new_p))


class RealKafkaFreeTopicShutdownTest(TestCase):
    """Issue 13: after free topics it had read were deleted, the node hung in
    librdkafka's destroy on SIGTERM (librdkafka 2.0.2 leaks an unassigned
    partition of a deleted topic, and with it a reference to its broker)."""

    WATCHDOG = "Kafka client shutdown still running after"

    def test_sigterm_after_free_topics_deleted_exits_without_the_watchdog(self):
        kafka = ApacheKafka(brokers=1)
        self.addCleanup(kafka.stop)
        drain_ms = 1000
        n = self.node(kafka.bootstrap, ["--free-topic", "search.*", "--free-topic-partitions", "3",
                                        "--free-topic-grace-ms", "300", "--linger-ms", "200",
                                        "--metadata-refresh-ms", "300", "--drain-timeout-ms", str(drain_ms)])
        c = self.client(n)
        # every key of one, then one key of another with a record through it
        s = c.subscribe("search.A", None)
        self.assertEqual(s.partitions, [0, 1, 2])
        c.unsubscribe(s.feed)
        n.proc.wait_log(r"search\.A partition count changed from 3 to 0", timeout=30)
        s = c.subscribe("search.B", b"rex")
        c.publish("search.B", b"rex", b"woof")
        self.assertEqual(c.messages(1, timeout=20, feed=s.feed)[0].value, b"woof")
        c.unsubscribe(s.feed)
        n.proc.wait_log(r"search\.B partition count changed from 3 to 0", timeout=30)
        c.close()
        t0 = time.monotonic()
        n.proc.signal(signal.SIGTERM)
        rc = n.proc.wait_exit(drain_ms / 1000.0 + 2.0)
        took = time.monotonic() - t0
        log = n.proc.stderr()
        self.assertEqual(rc, 0, n.proc.tail(60))
        self.assertNotIn(self.WATCHDOG, log, "left through the watchdog after %.1fs\n%s" % (took, n.proc.tail(60)))
        self.assertIsNone(harness.SANITIZER_RX.search(log), n.proc.tail(60))


class RealKafkaLossTest(TestCase):
    """Records Kafka loses under a node (its own broker: DeleteRecords is hard on the others' shutdown)."""
    PLAIN_ONLY = "Apache Kafka's behaviour (the sanitizers see the same node code with the mock)"

    def test_records_lost_in_kafka_are_told_as_dropped(self):
        """Records deleted from the log before the owner read them: every
        subscriber, on the owner and on a node the owner relays to, is told
        how many with DROPPED, and the feed goes on. The owner's fetches wait
        for 1 MB or 10 s, so records written and deleted within one wait are
        never read."""
        kafka = ApacheKafka(brokers=1)
        self.addCleanup(kafka.stop)
        kafka.create_topic("lossy", 1)
        cl = self.cluster(nodes=2, haproxy=False, kafka=kafka,
                          node_args=["--linger-ms", "200", "--kafka-opt", "fetch.min.bytes=1000000",
                                     "--kafka-opt", "fetch.wait.max.ms=10000"])
        owner, relay = cl.nodes
        a = self.client(owner)
        sa = a.subscribe("lossy", b"k")            # first: node 1 owns the feed
        b = self.client(relay)
        sb = b.subscribe("lossy", b"k")
        self.assertEqual(owner_node(cl.redis.cli("GET", "subway:feed:{lossy/k}:owner")), owner.node_id)
        produce(kafka.bootstrap, "lossy", [("k", "seen")])
        for c, s in ((a, sa), (b, sb)):
            self.assertEqual(c.messages(1, timeout=30, feed=s.feed)[0].value, b"seen")
        # a new fetch from offset 1 now waits at the broker
        produce(kafka.bootstrap, "lossy", [("k", "gone-%d" % i) for i in range(10)])
        delete_records(kafka.bootstrap, "lossy", 0, 11)
        for c, s in ((a, sa), (b, sb)):
            d = c.expect(wire.DROPPED, timeout=30)
            self.assertEqual((d.feed, d.count), (s.feed, 10))
        produce(kafka.bootstrap, "lossy", [("k", "after")])
        for c, s in ((a, sa), (b, sb)):
            got = c.messages(1, timeout=30, feed=s.feed)[0]
            self.assertEqual((got.value, got.offset), (b"after", 11))
        self.assertEqual(owner.stats()["counters"]["lost"], 10)
        self.assertEqual(relay.stats()["counters"]["lost"], 0)   # counted where Kafka was read


class RealKafkaClusterTest(TestCase):
    """One Apache Kafka broker, Redis, three subway nodes."""
    PLAIN_ONLY = "Apache Kafka's behaviour (the sanitizers see the same node code with the mock)"

    @classmethod
    def setUpClass(cls):
        cls.kafka = class_fixture(cls, ApacheKafka(brokers=1))
        cls.kafka.create_topic("orders", 6)

    def cluster_on_kafka(self):
        return self.cluster(nodes=3, haproxy=False, kafka=self.kafka,
                            node_args=["--linger-ms", "300", "--lease-ms", "1000", "--node-ttl-ms", "1000",
                                       "--reap-interval-ms", "250", "--free-topic", "free.*",
                                       "--free-topic-grace-ms", "300"])

    def test_free_topic_lives_while_any_node_uses_it(self):
        cl = self.cluster_on_kafka()
        a = self.client(cl.nodes[0])
        b = self.client(cl.nodes[1])
        sa = a.subscribe("free.t1", b"k")
        b.subscribe("free.t1", b"other")
        a.unsubscribe(sa.feed)
        # node 1's feed goes after its linger, then its grace passes: node 2
        # still holds a feed of the topic, so it stays
        cl.nodes[0].wait_stats(lambda st: not any(f["topic"] == "free.t1" for f in st["feeds"]), timeout=10,
                               what="node 1 let go of free.t1")
        cl.nodes[0].proc.wait_log("free topic free.t1: in use on another node; not deleted", timeout=10)
        self.assertIn("free.t1", [t["topic"] for t in self.kafka.metadata()["topics"]])
        b.close()
        wait_until(lambda: "free.t1" not in [t["topic"] for t in self.kafka.metadata()["topics"]], 20,
                   "free.t1 deleted once no node uses it")

    def test_shared_feed_one_owner_release_at_zero(self):
        cl = self.cluster_on_kafka()
        a = self.client(cl.nodes[0])
        b = self.client(cl.nodes[1])
        sa = a.subscribe("orders", b"cust-1")
        sb = b.subscribe("orders", b"cust-1")
        p = java_partition(b"cust-1", 6)
        owners = [n for n in cl.nodes if {"topic": "orders", "partition": p} in n.stats()["assigned"]]
        self.assertEqual(len(owners), 1, "exactly one node reads the partition")
        self.assertEqual(cl.redis.cli("GET", "subway:feed:{orders/cust-1}:count"), "2")
        console_produce(self.kafka.bootstrap, "orders", [("cust-1", "o1"), ("cust-2", "x"), ("cust-1", "o2")])
        for c, s in ((a, sa), (b, sb)):
            self.assertEqual([m.value for m in c.messages(2, timeout=20, feed=s.feed)], [b"o1", b"o2"])
        a.unsubscribe(sa.feed)
        b.unsubscribe(sb.feed)
        wait_until(lambda: all({"topic": "orders", "partition": p} not in n.stats()["assigned"] for n in cl.nodes),
                   10, "partition released everywhere after the linger")
        self.assertEqual(cl.redis.cli("EXISTS", "subway:feed:{orders/cust-1}:owner"), "0")

    def test_owner_kill9_no_record_lost(self):
        cl = self.cluster_on_kafka()
        clients = [self.client(n) for n in cl.nodes[:2]]
        subs = [c.subscribe("orders", b"cust-9") for c in clients]
        owner_id = owner_node(cl.redis.cli("GET", "subway:feed:{orders/cust-9}:owner"))
        survivor = [i for i, n in enumerate(cl.nodes[:2]) if n.node_id != owner_id]
        self.assertEqual(len(survivor), 1, "the owner is one of the two subscribed nodes")
        i = survivor[0]
        stop = threading.Event()
        sent = []

        def producer():
            seq = 0
            while not stop.is_set() and seq < 400:
                batch = [("cust-9", "r%d" % (seq + j)) for j in range(20)]
                produce(self.kafka.bootstrap, "orders", batch)
                sent.extend(v for _, v in batch)
                seq += 20

        t = threading.Thread(target=producer)
        t.start()
        try:
            wait_until(lambda: len(sent) >= 60, 30, "records flowing")
            cl.node(owner_id).kill9()
            wait_until(lambda: owner_node(cl.redis.cli("GET", "subway:feed:{orders/cust-9}:owner"))
                       == cl.nodes[i].node_id, 10, "the survivor owns the feed")
        finally:
            stop.set()
            t.join()
        want = set(sent)
        got = set()

        def all_in():
            for m in clients[i].collect(0.2):
                if m.type == wire.MESSAGE and m.feed == subs[i].feed:
                    got.add(m.value.decode())
            return want <= got

        wait_until(all_in, 30, "every produced record at the survivor's client")


class RealKafkaLeaderChangeTest(TestCase):
    """Three Apache Kafka brokers: a partition leader goes away and comes back."""
    PLAIN_ONLY = "Apache Kafka's behaviour (the sanitizers see the same node code with the mock)"

    def test_feed_survives_leader_change(self):
        kafka = ApacheKafka(brokers=3)
        self.addCleanup(kafka.stop)
        kafka.create_topic("rep", 3, rf=3)
        # The test's one thread answers PINGs only while it reads, and a
        # broker restarting can take longer than the default 15 s timeout.
        n = self.node(kafka.bootstrap, ["--linger-ms", "200", "--heartbeat-ms", "20000"])
        c = self.client(n)
        s = c.subscribe("rep", b"key-1")
        p = java_partition(b"key-1", 3)
        produce(kafka.bootstrap, "rep", [("key-1", "before")], extra=["-X", "acks=all"])
        self.assertEqual(c.messages(1, timeout=20, feed=s.feed)[0].value, b"before")
        leader = kafka.leaders("rep")[p]
        kafka.stop_broker(leader)
        kafka.wait_leaders("rep", lambda l: l[p] not in (-1, leader), timeout=60,
                           what="a new leader for partition %d" % p)
        produce(kafka.bootstrap, "rep", [("key-1", "after-%d" % j) for j in range(5)], extra=["-X", "acks=all"])
        got = [m.value for m in c.messages(5, timeout=60, feed=s.feed)]
        self.assertEqual(got, [b"after-%d" % j for j in range(5)])
        kafka.start_broker(leader)
        produce(kafka.bootstrap, "rep", [("key-1", "back")], extra=["-X", "acks=all"])
        self.assertEqual(c.messages(1, timeout=60, feed=s.feed)[0].value, b"back")


class RealKafkaCatchupTest(TestCase):
    """Start positions on Apache Kafka (its own broker: DeleteRecords): offsets-for-times, records
    retention took from a resuming client, and clients resuming through HAProxy across a kill -9."""
    PLAIN_ONLY = "Apache Kafka's behaviour (the sanitizers see the same node code with the mock)"

    @classmethod
    def setUpClass(cls):
        cls.kafka = class_fixture(cls, ApacheKafka(brokers=1))
        for name, n in (("when", 3), ("kept", 1), ("orders", 4)):
            cls.kafka.create_topic(name, n)

    def test_timestamp_start(self):
        """TIMESTAMP: every record whose timestamp is at or after it, in
        each partition (Kafka's ListOffsets by time), then LIVE."""
        produce(self.kafka.bootstrap, "when", [("w%d" % i, "early-%d" % i) for i in range(30)])
        produce(self.kafka.bootstrap, "when", [("w%d" % i, "late-%d" % i) for i in range(30)])
        kafka = harness.consume(self.kafka.bootstrap, "when")
        at = min(r["ts"] for r in kafka if r["value"].startswith("late"))
        want = {}
        for r in sorted(kafka, key=lambda r: (r["partition"], r["offset"])):
            if r["ts"] >= at:
                want.setdefault(r["partition"], []).append(r["offset"])
        c = self.client(self.node(self.kafka.bootstrap))
        sub = c.subscribe("when", "*", start=("timestamp", at))
        frames, live = c.until_live(sub.feed, timeout=30)
        got = {}
        for f in frames:
            got.setdefault(f.partition, []).append(f.offset)
        self.assertEqual(got, want)
        ends = {p: max(r["offset"] for r in kafka if r["partition"] == p) + 1 for p in range(3)}
        self.assertEqual(live.position_map(), ends)

    def test_retention_ahead_of_a_resuming_client(self):
        """A client resumes from offset 5; DeleteRecords (what retention
        does) took everything below 12: DROPPED 7 right before offset 12."""
        produce(self.kafka.bootstrap, "kept", [("k", "v%d" % i) for i in range(20)])
        delete_records(self.kafka.bootstrap, "kept", 0, 12)
        c = self.client(self.node(self.kafka.bootstrap))
        sub = c.subscribe("kept", "k", start=("positions", {0: 5}))
        frames, live = c.until_live(sub.feed, timeout=30)
        self.assertEqual((frames[0].type, frames[0].count), (wire.DROPPED, 7))
        self.assertEqual([(f.type, f.offset) for f in frames[1:]], [(wire.MESSAGE, o) for o in range(12, 20)])
        self.assertEqual(live.position_map(), {0: 20})

    def test_clients_resume_across_a_kill9_of_the_owner(self):
        """Three nodes on Apache Kafka behind HAProxy: the owner is killed
        while records flow, and every client resumes from its positions on
        another node with nothing missed or repeated."""
        from test_resume import CLUSTER_ARGS, Producer, Resumer
        cl = self.cluster(nodes=3, kafka=self.kafka, node_args=CLUSTER_ARGS)
        resumers = [Resumer(cl, "orders", k) for k in ("c1", "c2", "*") for _ in range(2)]
        for r in resumers:
            self.addCleanup(r.stop)
        wait_until(lambda: all(r.first is not None for r in resumers), 60, "every client live")
        prod = Producer(self.kafka.bootstrap, "orders", ["c1", "c2", "c3"])
        self.addCleanup(prod.stop)
        marks = [len(r.records) for r in resumers]
        wait_until(lambda: all(len(r.records) > m for r, m in zip(resumers, marks)), 60, "records flowing")
        owner = cl.owner("orders", "c1")
        before = sum(r.connects for r in resumers)
        cl.node(owner).kill9()
        wait_until(lambda: sum(r.connects for r in resumers) > before, 60, "clients of the dead owner back")
        marks = [len(r.records) for r in resumers]
        wait_until(lambda: all(len(r.records) > m for r, m in zip(resumers, marks)), 60, "records flowing again")
        prod.stop()
        kafka = harness.consume(self.kafka.bootstrap, "orders")
        want = {id(r): sum(1 for x in kafka if x["offset"] >= r.first.get(x["partition"], 0)
                           and (r.key == "*" or x["key"] == r.key)) for r in resumers}
        wait_until(lambda: all(len(r.records) >= want[id(r)] for r in resumers), 60, "every client caught up")
        for r in resumers:
            r.stop()
            r.check(self, kafka)
