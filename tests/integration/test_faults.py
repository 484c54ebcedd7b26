"""test_faults.py -- the cluster's promise under the faults that break clusters: cuts from Redis, pauses, Redis outages, stops and restarts.

Three nodes, one feed held on each, a producer writing keyed records all
along. Each test injects one fault (tests/integration/nemesis.py), lets it
heal, and then checks, against what Kafka holds:
  - every subscriber got every record of the feed, or a DROPPED covering it
    (here: every record; the nodes repair gaps from Kafka), and none twice;
  - Redis's count of the feed equals the live subscriptions on live nodes,
    and exactly one live node owns it, reading its partition alone;
  - while an owner is cut off, it stops acting as owner (its /stats says
    fenced, or it is a relay) before Redis hands the lease to anyone else.
"""

import os
import threading
import time

from harness import TestCase, class_fixture, consume, feed_key, feed_name, owner_node, produce, wait_until
import test_cluster
import wire
from wire import DROPPED, MESSAGE
from test_cluster import (LEASE, LEASE_MS, NODE_ARGS, NODE_TTL_MS, REAP_DEADLINE, TOPICS, ClusterCase, in_kafka,
                          key_on)

REDIS_TIMEOUT_MS = 400
FAULT_ARGS = ["--redis-timeout-ms", REDIS_TIMEOUT_MS]
SETTLE = 20.0                     # after a heal: counts exact, one owner, every record in


class Subscriber:
    """One client's subscription, with everything it received: each
    (partition, offset) in arrival order, and DROPPED counts."""

    def __init__(self, client, topic, key, node_id):
        self.client = client
        self.node_id = node_id
        self.sub = client.subscribe(topic, key)
        self.seen = []
        self.dropped = 0

    def pull(self, duration=0.05):
        for f in self.client.collect(duration):
            if f.type == MESSAGE and f.feed == self.sub.feed:
                self.seen.append((f.partition, f.offset))
            elif f.type == DROPPED and f.feed == self.sub.feed:
                self.dropped += f.count
            elif f.type in (wire.ERROR, wire.GOAWAY):
                raise AssertionError("%s: unexpected %r" % (self.node_id, f))

    def has(self, want):
        return set(want) <= set(self.seen)


class Producer(threading.Thread):
    """Writes small batches of one key until stopped; values v00000, ..."""

    def __init__(self, bootstrap, topic, key):
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, key)
        self.stop_ev = threading.Event()
        self.n = 0
        self.errors = []

    def run(self):
        bootstrap, topic, key = self.args
        try:
            while not self.stop_ev.is_set() and self.n < 20000:
                produce(bootstrap, topic, [(key, "v%05d" % (self.n + j)) for j in range(5)])
                self.n += 5
        except Exception as e:  # reported by the test
            self.errors.append(e)

    def wait_more(self, n, timeout=15.0):
        """Waits until n more records than now are written."""
        target = self.n + n
        deadline = time.monotonic() + timeout
        while self.n < target:
            if time.monotonic() > deadline or not self.is_alive():
                raise AssertionError("producer stalled at %d records (%r)" % (self.n, self.errors))
            time.sleep(0.02)

    def finish(self):
        self.stop_ev.set()
        self.join(60)
        if self.errors or self.is_alive():
            raise AssertionError("producer failed: %r" % (self.errors,))


class FaultCase(ClusterCase):
    EXTRA_ARGS = FAULT_ARGS
    REDIS_PROXY = True
    TOPIC = "orders"

    KAFKA = None                  # a running Apache Kafka to use instead of a mock (see ApacheKafkaFaultTest)

    def setUp(self):
        TestCase.setUp(self)
        self.c = self.cluster(TOPICS, self.NODES, NODE_ARGS + list(self.EXTRA_ARGS), redis_proxy=self.REDIS_PROXY,
                              kafka=self.KAFKA)
        self.key = key_on(2, "%s-" % self._testMethodName)   # distinct: Apache Kafka outlives a test
        self.subs = [Subscriber(self.node_client(n), self.TOPIC, self.key, n) for n in self.c.node_ids]
        self.wait_feed(self.TOPIC, self.key, 3, {n: 1 for n in self.c.node_ids}, owner_in=self.c.node_ids)
        self.owner = self.wait_single_owner(self.TOPIC, self.key, self.c.node_ids)
        self.others = [n for n in self.c.node_ids if n != self.owner]
        self.producer = Producer(self.c.kafka.bootstrap, self.TOPIC, self.key)
        self.producer.start()
        self.addCleanup(self.producer.stop_ev.set)
        self.pump_until(lambda: all(len(s.seen) >= 10 for s in self.subs), 15, "records flowing before the fault")

    # ---- helpers

    def sub_on(self, node_id):
        return [s for s in self.subs if s.node_id == node_id][0]

    def pump(self, subs=None):
        for s in subs if subs is not None else self.subs:
            s.pull(0.02)

    def pump_until(self, cond, timeout, what, subs=None):
        """Reads the subscribers (those given, else all) until cond()."""
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %.1fs waiting for %s; %s" % (
                    timeout, what, self.c.describe([(self.TOPIC, self.key)])))
            self.pump(subs)

    def owner_now(self):
        return owner_node(self.c.redis.call("GET", feed_key(self.TOPIC, self.key, "owner")))

    def feed_stats(self, node_id):
        return self.c.node(node_id).feed(self.TOPIC, self.key) or {}

    def acting_owner(self, node_id):
        """node_id's /stats says it acts as the feed's owner (not fenced)."""
        f = self.feed_stats(node_id)
        return f.get("role") == "owner" and not f.get("fenced")

    def check_no_loss(self, subs=None):
        """Stops the producer; every subscriber (those given, else all) gets
        every record of the feed Kafka holds, none twice, no DROPPED."""
        self.producer.finish()
        subs = subs if subs is not None else self.subs
        want = set(in_kafka(self.c.kafka.bootstrap, self.TOPIC, self.key))
        self.assertEqual(len(want), self.producer.n)
        self.pump_until(lambda: all(s.has(want) for s in subs), SETTLE, "every subscriber to get all %d records (%s)"
                        % (len(want), ", ".join("%s: %d missing" % (s.node_id, len(want - set(s.seen)))
                                                for s in subs)), subs)
        for s in subs:
            dups = len(s.seen) - len(set(s.seen))
            self.assertEqual(dups, 0, "%s: %d records delivered twice" % (s.node_id, dups))
            self.assertEqual(s.dropped, 0, "%s: DROPPED %d, yet Kafka still holds every record" % (
                s.node_id, s.dropped))
            self.assertEqual(s.seen, sorted(s.seen), "%s: records out of offset order" % s.node_id)

    def check_settled(self, holders=None):
        """Counts exact for the live holders, and one owner among them."""
        holders = holders if holders is not None else self.c.node_ids
        r = self.c.redis
        self.c.wait(lambda: all(self.c.incarnation(n) is not None
                                and r.call("HGET", "subway:node:%s" % n, "incarnation") == self.c.incarnation(n)
                                for n in holders), SETTLE,
                    "every holder registered, its liveness key of its current session")
        self.wait_feed(self.TOPIC, self.key, len(holders), {n: 1 for n in holders}, owner_in=holders,
                       timeout=SETTLE)
        return self.wait_single_owner(self.TOPIC, self.key, holders, timeout=SETTLE)


class CutFromRedisTest(FaultCase):
    def test_owner_cut_off_fences_itself_before_anyone_takes_over(self):
        self.owner_cut_off()

    def owner_cut_off(self):
        """The owner's link to Redis stops answering, connections left open,
        for three leases. It must stop acting as owner before Redis hands
        the lease to another node; at the heal its queued relays are refused
        (no subscriber gets a record twice), and it catches its own
        subscriber up instead of losing what passed."""
        old = self.owner
        self.c.proxy(old).cut()
        t_cut = time.monotonic()
        took = None
        while time.monotonic() - t_cut < 3 * LEASE:
            self.pump()
            now = self.owner_now()
            if now not in (None, old):
                if took is None:
                    took = now
                # Redis gave the lease away: the old owner has stopped acting.
                self.assertFalse(self.acting_owner(old), "%s still acts as owner after %s took the lease" % (old, now))
        self.assertIsNotNone(took, "nobody took the feed over during the cut")
        self.assertTrue(self.feed_stats(old).get("fenced"), "the cut-off owner does not report fenced")
        self.c.proxy(old).heal()
        self.producer.wait_more(30)
        self.check_settled()
        self.check_no_loss()
        self.c.node(old).proc.wait_log("lease not renewed in time", timeout=1)

    def test_relay_node_cut_off_reads_the_gap_from_kafka(self):
        """A node that receives the feed through the relay misses what the
        owner relays while its link to Redis is cut; after the heal it reads
        the gap from Kafka, and its subscriber misses nothing."""
        victim = self.others[0]
        self.c.proxy(victim).cut()
        self.producer.wait_more(100)
        self.c.proxy(victim).heal()
        self.producer.wait_more(30)
        self.check_settled()
        self.check_no_loss()

    def test_node_reaped_while_cut_off_reasserts(self):
        """Cut off longer than the node TTL: the others reap it (its count
        goes) while it lives. Once it reaches Redis again it notices, starts a
        new session and re-asserts: the count is exact again."""
        victim = self.others[0]
        self.c.proxy(victim).cut()
        self.wait_feed(self.TOPIC, self.key, 2, {n: 1 for n in self.c.node_ids if n != victim},
                       timeout=REAP_DEADLINE + 3, what="the cut-off node %s reaped" % victim)
        self.c.proxy(victim).heal()
        self.check_settled()
        self.check_no_loss()


class PauseTest(FaultCase):
    def test_paused_owner_wakes_checks_and_catches_up(self):
        self.paused_owner()

    def paused_owner(self):
        """SIGSTOP of the owner for two leases and a node TTL: another node
        takes over and the paused one is reaped. On SIGCONT it must check
        before it acts (its late relays are refused), come back with exact
        counts, and give its own subscriber what was produced meanwhile."""
        old = self.owner
        node = self.c.node(old)
        node.pause()
        try:
            self.pump_until(lambda: self.owner_now() not in (None, old), LEASE + 5, "a takeover during the pause",
                            [self.sub_on(n) for n in self.others])
            self.wait_feed(self.TOPIC, self.key, 2, {n: 1 for n in self.others}, timeout=REAP_DEADLINE + 3,
                           what="the paused owner reaped")
            self.producer.wait_more(50)
        finally:
            node.resume()
        self.producer.wait_more(30)
        self.check_settled()
        self.check_no_loss()


class ApacheKafkaFaultTest(FaultCase):
    """The two hardest faults again, on Apache Kafka itself (one broker,
    KRaft): the nodes' consumers re-read and repair from a real log."""
    PLAIN_ONLY = "Apache Kafka's behaviour (the sanitizers see the same node code with the mock)"

    @classmethod
    def setUpClass(cls):
        from kafka_real import ApacheKafka
        cls.KAFKA = class_fixture(cls, ApacheKafka(brokers=1))
        for topic, n in TOPICS.items():
            cls.KAFKA.create_topic(topic, n)

    def test_owner_cut_off_on_apache_kafka(self):
        CutFromRedisTest.owner_cut_off(self)

    def test_paused_owner_on_apache_kafka(self):
        PauseTest.paused_owner(self)


class RedisOutageTest(FaultCase):
    REDIS_PROXY = False

    def outage(self, keep_data):
        self.c.redis.down()
        self.producer.wait_more(150)     # several seconds of traffic with Redis away
        self.c.redis.up(keep_data=keep_data)
        self.producer.wait_more(30)
        self.check_settled()
        self.check_no_loss()

    def test_redis_down_under_traffic_then_back_empty(self):
        """Redis killed for a few seconds under traffic, back empty: relay
        nodes, cut from the owner meanwhile, read what they missed from
        Kafka; counts are exact again."""
        self.outage(keep_data=False)

    def test_redis_killed_and_back_with_its_data(self):
        self.outage(keep_data=True)


class StopAndRestartTest(FaultCase):
    EXTRA_ARGS = FAULT_ARGS + ["--lease-ms", 10000]   # a takeover sooner than this is a hand-over

    def test_graceful_stop_hands_the_feed_over_at_once(self):
        """SIGTERM of the owner: it releases its lease (offsets kept) and
        tells the relays, which take over well within the lease."""
        old = self.owner
        self.sub_on(old).client.close()    # its client moves on: the drain need not wait for it
        self.c.node(old).stop()
        self.c.node(old).killed = True     # ended on purpose
        t = time.monotonic()
        survivors = [self.sub_on(n) for n in self.others]
        self.pump_until(lambda: self.owner_now() in self.others, 5, "a survivor to take the feed over", survivors)
        self.assertLess(time.monotonic() - t, 5)
        self.check_settled(self.others)
        self.check_no_loss(survivors)

    def test_restart_under_the_same_id_never_inherits_the_lease(self):
        """The owner restarts under its node id within the lease (what
        systemctl restart does). The new process has none of the old one's
        positions: it must not pass for the owner; the feed moves on without
        loss for the subscribers on the other nodes."""
        old = self.owner
        old_token = self.c.redis.call("GET", feed_key(self.TOPIC, self.key, "owner"))
        node = self.c.node(old)
        node.stop()
        node.start()
        self.c.wait_registered(old)
        survivors = [self.sub_on(n) for n in self.others]
        self.pump_until(lambda: self.owner_now() in self.others, 5, "a survivor to take the feed over", survivors)
        self.assertNotEqual(self.c.redis.call("GET", feed_key(self.TOPIC, self.key, "owner")), old_token)
        back = Subscriber(self.node_client(old), self.TOPIC, self.key, old)
        self.subs = survivors + [back]
        self.producer.wait_more(30)
        self.check_settled()
        self.check_no_loss(survivors)


class FaultChurnTest(test_cluster.ChurnTest):
    """The seeded churn (test_cluster.ChurnTest) with faults in its random
    schedule: a node cut from Redis, a node paused, Redis down (back empty or
    with its data), a graceful restart, a kill -9, each while a producer
    writes to every feed. At each quiet point, besides invariants 1-3, every
    live subscription must have every record of its feed that Kafka holds
    from the first one it got on, or a DROPPED covering what it lacks, and no
    record twice. SUBWAY_CHURN_SEED=N replays a run; SUBWAY_CHURN_STEPS sets
    its length (make chaos runs a long one)."""

    EXTRA_ARGS = ("--heartbeat-timeout-ms", "120000") + tuple(FAULT_ARGS)
    CLIENTS = 8
    STEPS = int(os.environ.get("SUBWAY_CHURN_STEPS") or 40)
    QUIET_EVERY = 10
    FAULT_P = 0.12
    FEEDS = [("orders", key_on(0, "fc")), ("orders", key_on(4, "fc")), ("demo", None)]
    FAULTS = ("cut", "pause", "redis-empty", "redis-data", "restart", "kill9")

    def setUp(self):
        TestCase.setUp(self)
        self.c = self.cluster(TOPICS, self.NODES, NODE_ARGS + list(self.EXTRA_ARGS), redis_proxy=True)
        self.producer = ChurnProducer(self.c.kafka.bootstrap, self.FEEDS)
        self.producer.start()
        self.addCleanup(self.producer.finish)

    def test_churn(self):
        self.tally_faults = {f: 0 for f in self.FAULTS}
        test_cluster.ChurnTest.test_churn(self)
        print("faults: %s" % ", ".join("%s %d" % kv for kv in self.tally_faults.items()))

    # ---- delivery bookkeeping: slot["got"][feed index] = [(p, o), ...], slot["lost"][f] = DROPPED total

    def connect(self, slot):
        test_cluster.ChurnTest.connect(self, slot)
        slot.update(got={}, lost={})

    def drop(self, slot):
        test_cluster.ChurnTest.drop(self, slot)
        slot.update(got={}, lost={})

    def pull(self, slot, duration=0.01):
        slot.setdefault("got", {})
        slot.setdefault("lost", {})
        cl = slot["client"]
        if cl is None:
            return
        by_handle = {h: f for f, h in slot["subs"].items()}
        for fr in cl.collect(duration):
            f = by_handle.get(getattr(fr, "feed", None))
            if fr.type == MESSAGE and f is not None:
                slot["got"].setdefault(f, []).append((fr.partition, fr.offset))
            elif fr.type == DROPPED and f is not None:
                slot["lost"][f] = slot["lost"].get(f, 0) + fr.count
            elif fr.type == wire.GOAWAY:
                slot["goaway"] = True

    def pull_all(self):
        for slot in self.slots:
            self.pull(slot)

    def step(self, i, slot):
        self.pull_all()
        if slot.get("goaway"):
            self.drop(slot)
        had = dict(slot["subs"]) if slot["client"] is not None else {}
        test_cluster.ChurnTest.step(self, i, slot)
        if slot["client"] is not None:
            slot.setdefault("got", {})
            slot.setdefault("lost", {})
            for f in set(had) - set(slot["subs"]):   # unsubscribed: its history ends
                slot["got"].pop(f, None)
                slot["lost"].pop(f, None)
        if self.rng.random() < self.FAULT_P:
            self.fault(i, self.rng.choice(self.FAULTS))

    # ---- faults: each injected, held while the producer writes, healed

    def fault(self, i, kind):
        c, rng = self.c, self.rng
        victim = rng.choice(c.node_ids)
        self.history.append("%d: fault %s on %s" % (i, kind, victim if "redis" not in kind else "redis"))
        self.tally_faults[kind] += 1
        hold = lambda: self.producer.wait_more(rng.randrange(20, 60), tick=self.pull_all)
        if kind == "cut":
            c.proxy(victim).cut()
            hold()
            c.proxy(victim).heal()
        elif kind == "pause":
            c.node(victim).pause()
            try:
                hold()
            finally:
                c.node(victim).resume()
        elif kind.startswith("redis"):
            c.redis.down()
            hold()
            c.redis.up(keep_data=kind == "redis-data")
        else:
            node = c.node(victim)
            if kind == "kill9":
                node.kill9()
            else:
                node.stop()
            for slot in self.slots:
                if slot["node"] == victim:
                    self.drop(slot)
            node.start()
            c.wait_registered(victim)
        # Nodes cut off from Redis answer /readyz 503 (so does every node
        # while Redis is down): HAProxy takes them out and refuses new
        # clients until it sees them ready again.
        live = [n.node_id for n in c.live_nodes()]
        wait_until(lambda: not self.pull_all() and all(c.haproxy.server_states().get(n) == "UP" for n in live),
                   30, "HAProxy sees every live node ready again")
        self.quiet_point("after %s" % kind)

    # ---- the no-loss check, at every quiet point

    def quiet_point(self, label):
        self.producer.hold.set()          # a still point: what Kafka holds is all there is
        try:
            self.producer.wait_idle()
            self.pull_all()
            self.check_invariants(label)
            self.check_no_silent_loss(label)
        finally:
            self.producer.hold.clear()

    def kafka_records(self):
        """{feed index: {(p, o)}} of every record Kafka holds for each feed."""
        out = {}
        cache = {}
        for f, (topic, key) in enumerate(self.FEEDS):
            if topic not in cache:
                cache[topic] = consume(self.c.kafka.bootstrap, topic)
            out[f] = {(r["partition"], r["offset"]) for r in cache[topic] if key is None or r["key"] == key}
        return out

    def check_no_silent_loss(self, label):
        held = self.kafka_records()

        def missing(slot, f):
            got = slot.get("got", {}).get(f, [])
            first = {}
            for p, o in got:
                first[p] = min(o, first.get(p, o))
            want = {(p, o) for p, o in held[f] if p in first and o >= first[p]}
            return len(want - set(got)) - slot.get("lost", {}).get(f, 0)

        def complete():
            self.pull_all()
            return all(missing(s, f) <= 0 for s in self.slots if s["client"] is not None for f in s["subs"])

        def detail(slot, f):
            got = slot.get("got", {}).get(f, [])
            first = {}
            for p, o in got:
                first[p] = min(o, first.get(p, o))
            lack = sorted({(p, o) for p, o in held[f] if p in first and o >= first[p]} - set(got))
            return "%d missing of %d got (first %s, missing %s..%s, DROPPED %d)" % (
                len(lack), len(got), first, lack[:1], lack[-1:], slot.get("lost", {}).get(f, 0))

        try:
            self.c.wait(complete, SETTLE, "at %s: every live subscription to have every record from its first on "
                        "(or a DROPPED for it)" % label, feeds=self.FEEDS)
        except AssertionError as e:
            stats = self.c.all_stats()
            feeds_txt = "\n".join("%s: %s" % (n, [(f["topic"], f["key"], f.get("role"), f.get("records"), f.get("fenced"),
                                                  f.get("repairing")) for f in st["feeds"]])
                                 for n, st in stats.items())
            raise AssertionError("%s\n%s\n%s" % (e, feeds_txt, "\n".join(
                "client %d on %s, %s: %s" % (s["n"], s["node"], feed_name(*self.FEEDS[f]), detail(s, f))
                for s in self.slots if s["client"] is not None for f in s["subs"]))) from None
        for s in self.slots:
            for f, got in s.get("got", {}).items():
                self.assertEqual(len(got), len(set(got)), "at %s: client %d got records of %s twice" % (
                    label, s["n"], feed_name(*self.FEEDS[f])))


class ChurnProducer(threading.Thread):
    """Writes a record to each churn feed (a random key for every-key feeds)
    in turns, until finished; hold pauses it at a still point."""

    def __init__(self, bootstrap, feeds):
        super().__init__(daemon=True)
        self.bootstrap, self.feeds = bootstrap, feeds
        self.hold = threading.Event()
        self.idle = threading.Event()
        self.stop_ev = threading.Event()
        self.n = 0
        self.errors = []

    def run(self):
        i = 0
        try:
            while not self.stop_ev.is_set():
                if self.hold.is_set():
                    self.idle.set()
                    time.sleep(0.01)
                    continue
                self.idle.clear()
                by_topic = {}
                for topic, key in self.feeds:
                    by_topic.setdefault(topic, []).append((key or "any%d" % (i % 7), "c%06d" % i))
                    i += 1
                for topic, recs in by_topic.items():
                    produce(self.bootstrap, topic, recs)
                self.n += 1
        except Exception as e:  # reported by finish()
            self.errors.append(e)

    def wait_idle(self, timeout=30.0):
        wait_until(lambda: self.idle.is_set() or not self.is_alive(), timeout, "the producer at a still point")

    def wait_more(self, n, tick=None, timeout=30.0):
        target = self.n + n
        deadline = time.monotonic() + timeout
        while self.n < target:
            if time.monotonic() > deadline or not self.is_alive():
                raise AssertionError("churn producer stalled (%r)" % (self.errors,))
            if tick:
                tick()
            else:
                time.sleep(0.02)

    def finish(self):
        self.stop_ev.set()
        self.join(30)
        if self.errors:
            raise AssertionError("churn producer failed: %r" % (self.errors,))
