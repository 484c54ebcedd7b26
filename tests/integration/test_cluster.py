"""test_cluster.py -- the Redis-coordinated cluster: real redis-server, three nodes, HAProxy in front.

What must hold (ARCHITECTURE.md, "Coordination in Redis"), checked at quiet
points, after crashes, Redis restarts and races:
  1. a feed's count in Redis == the live subscriptions to it on live nodes;
  2. at most one owner per feed; a feed with count > 0 has one within a lease;
  3. Kafka partitions are assigned only for feeds with count > 0 (plus linger).

Every test gets its own cluster (harness.Cluster): the nodes run with short
intervals so that crashes are noticed quickly, and every wait is a polled
condition with a deadline derived from them.
"""

import os
import random
import threading
import time

from harness import TestCase, WaitTimeout, consume, feed_key, feed_name, java_partition, node_key, produce
import wire
from wire import MESSAGE

LINGER_MS = 300
LEASE_MS = 1000
NODE_TTL_MS = 1000
REAP_MS = 250
NODE_ARGS = ["--linger-ms", LINGER_MS, "--lease-ms", LEASE_MS,
             "--node-ttl-ms", NODE_TTL_MS, "--reap-interval-ms", REAP_MS]

# Deadlines: the interval that bounds an event, plus SLACK for polling and
# scheduling on a loaded two-core machine under sanitizers.
SLACK = 2.0
LEASE = LEASE_MS / 1000.0
REAP_DEADLINE = (NODE_TTL_MS + REAP_MS) / 1000.0 + SLACK   # a dead node's counts are gone
OWNER_DEADLINE = LEASE + SLACK                            # a feed with count > 0 has an owner
RELEASE_DEADLINE = (LINGER_MS + LEASE_MS) / 1000.0 + SLACK  # count 0 -> partitions and owner gone
QUIET = 10.0                                              # counts settle after ordinary requests

TOPICS = {"orders": 6, "demo": 4}
NODE_FIELDS = ("addr", "admin", "pid", "version", "started_ms", "connections", "feeds")


def key_on(partition, prefix, n=6):
    """The first key prefix0, prefix1, ... whose Java-client partition
    among n is `partition` (to give the feeds of a test distinct
    partitions)."""
    for i in range(10000):
        k = "%s%d" % (prefix, i)
        if java_partition(k, n) == partition:
            return k
    raise AssertionError("no key for partition %d" % partition)


def feed_partitions(topic, key):
    """Partitions a feed reads: its key's partition, or all for key None."""
    n = TOPICS[topic]
    return set(range(n)) if key is None else {java_partition(key, n)}


def pull(client, feed, store, duration=0.05):
    """Reads what client has for `duration`; records MESSAGEs of feed
    (handle) into store {(partition, offset): value}. Fails on ERROR or
    GOAWAY. Returns the number of MESSAGE frames of feed seen."""
    seen = 0
    for f in client.collect(duration):
        if f.type == MESSAGE and f.feed == feed:
            store[(f.partition, f.offset)] = f.value
            seen += 1
        elif f.type in (wire.ERROR, wire.GOAWAY):
            raise AssertionError("unexpected %r on a subscriber" % (f,))
    return seen


def receive_all(client, feed, want, timeout=15.0, what="records", got=None):
    """Reads client until it has a MESSAGE of feed for every (partition,
    offset) in want {(p, o): value}, counting those already in got (a
    pull() store); duplicates allowed. Returns got. Fails listing the
    missing ones."""
    got = {} if got is None else got
    deadline = time.monotonic() + timeout
    while not set(want) <= set(got):
        if time.monotonic() > deadline:
            missing = sorted(set(want) - set(got))
            raise AssertionError("%s: %d of %d missing after %.0fs, e.g. %s" % (
                what, len(missing), len(want), timeout, missing[:10]))
        pull(client, feed, got, 0.1)
    for po, v in want.items():
        if wire.as_bytes(got[po]) != wire.as_bytes(v):
            raise AssertionError("%s: %r carries %r, Kafka has %r" % (what, po, got[po], v))
    return got


def in_kafka(bootstrap, topic, key):
    """{(partition, offset): value bytes} of key's records in Kafka."""
    part = java_partition(key, TOPICS[topic])
    return {(r["partition"], r["offset"]): r["value"].encode()
            for r in consume(bootstrap, topic, partition=part) if r["key"] == key}


class ClusterCase(TestCase):
    NODES = 3
    EXTRA_ARGS = ()

    def setUp(self):
        super().setUp()
        self.c = self.cluster(TOPICS, self.NODES, NODE_ARGS + list(self.EXTRA_ARGS))

    # ---- clients

    def lb_client(self):
        """A client through HAProxy (closed at cleanup)."""
        return self.client(self.c)

    def node_client(self, node_id):
        """A client straight to one node (closed at cleanup)."""
        return self.client(self.c.node(node_id))

    # ---- waiting on Redis and the nodes

    def wait_feed(self, topic, key, count, nodes, owner_in=None, timeout=QUIET, what=None):
        """Waits until Redis has exactly count and nodes ({node: n}) for the
        feed and, if owner_in is given, an owner among them. Returns the
        owner."""
        def ok():
            cnt, nds, owner = self.c.feed_state(topic, key)
            if (cnt, nds) != (count, nodes):
                return False
            if owner_in is not None:
                return owner if owner in owner_in else False
            return owner or True

        r = self.c.wait(ok, timeout, what or "Redis to show %s with count %d, nodes %r%s" % (
            feed_name(topic, key), count, nodes, "" if owner_in is None else ", owner in %s" % sorted(owner_in)),
            feeds=[(topic, key)])
        return r if isinstance(r, str) else None

    def roles(self, topic, key, stats):
        """{node: role} of the nodes whose /stats lists the feed."""
        out = {}
        for nid, s in stats.items():
            f = self.c.node(nid).feed(topic, key, s)
            if f is not None:
                out[nid] = f.get("role")
        return out

    def assigned_nodes(self, topic, partition, stats):
        """Nodes whose /stats assigned holds topic/partition."""
        return sorted(nid for nid, s in stats.items()
                      if partition in self.c.node(nid).assigned(topic, s))

    def wait_single_owner(self, topic, key, holders, timeout=OWNER_DEADLINE):
        """Waits until the feed's owner key names a live node that reports
        role "owner" and has the feed's partitions assigned, every other
        node in holders reports "relay", no other node claims "owner", and
        no other node has those partitions assigned. Returns the owner."""
        parts = feed_partitions(topic, key)
        state = {}

        def ok():
            owner = self.c.owner(topic, key)
            stats = self.c.all_stats()
            if owner not in stats:
                return False
            roles = self.roles(topic, key, stats)
            if roles.get(owner) != "owner":
                return False
            if [n for n, r in roles.items() if r == "owner"] != [owner]:
                return False
            if any(roles.get(n) != "relay" for n in holders if n != owner):
                return False
            for p in parts:
                if self.assigned_nodes(topic, p, stats) != [owner]:
                    return False
            state["owner"] = owner
            return True

        self.c.wait(ok, timeout, "one owner of %s (role owner, partitions %s assigned only there), "
                    "relays on %s" % (feed_name(topic, key), sorted(parts), sorted(holders)),
                    feeds=[(topic, key)])
        return state["owner"]

    def wait_released(self, topic, key, timeout=RELEASE_DEADLINE):
        """Waits until the feed is gone everywhere: no count, nodes or owner
        key in Redis, no node lists it, no node has its partitions assigned
        (none of this test's other feeds may share them)."""
        parts = feed_partitions(topic, key)

        def ok():
            r = self.c.redis
            if r.call("GET", feed_key(topic, key, "count")) not in (None, "0"):
                return False
            if r.call("EXISTS", feed_key(topic, key, "nodes"), feed_key(topic, key, "owner")) != 0:
                return False
            stats = self.c.all_stats()
            if self.roles(topic, key, stats):
                return False
            return not any(self.assigned_nodes(topic, p, stats) for p in parts)

        self.c.wait(ok, timeout, "%s released: count/nodes/owner keys gone, no node lists it or "
                    "has partitions %s assigned" % (feed_name(topic, key), sorted(parts)), feeds=[(topic, key)])

    def expect_record(self, client, handle, value, what, feeds=(), timeout=15.0):
        """Waits for a MESSAGE of feed handle whose value is `value` (bytes)
        or satisfies it (a callable); other frames stay pending. Fails with
        the cluster's state."""
        pred = value if callable(value) else (lambda v: v == value)
        try:
            return client.expect(MESSAGE, timeout, match=lambda f: f.feed == handle and pred(f.value))
        except (TimeoutError, wire.ConnectionClosed) as e:
            raise AssertionError("%s: %s\n%s" % (what, e, self.c.describe(feeds))) from None

    def hold(self, cond, duration, what):
        """Fails if cond() is ever false during `duration` (a negative check:
        something must *not* happen, e.g. a teardown during the linger)."""
        end = time.monotonic() + duration
        while time.monotonic() < end:
            if not cond():
                raise AssertionError("%s stopped holding\n%s" % (what, self.c.describe()))
            time.sleep(0.05)


class SharedFeedTest(ClusterCase):
    def test_two_nodes_one_feed_one_owner_release_at_zero(self):
        c = self.c
        topic, key = "orders", "cust-1"
        part = java_partition(key, 6)
        a, b = self.lb_client(), self.lb_client()
        na, nb = a.welcome.node_id, b.welcome.node_id
        self.assertNotEqual(na, nb, "HAProxy (leastconn) put two concurrent clients on one node")
        for n in c.nodes:
            want = 1 if n.node_id in (na, nb) else 0
            n.wait_stats(lambda s, want=want: s["connections"] == want,
                         what="%s to have %d client connection(s)" % (n.node_id, want))
        s = c.node(na).stats()
        self.assertEqual((s.get("coord"), s.get("redis")), ("redis", "connected"))

        sa = a.subscribe(topic, key)
        sb = b.subscribe(topic, key)
        self.assertEqual(sa.partitions, [part])
        self.assertEqual(sb.partitions, [part])
        owner = self.wait_feed(topic, key, 2, {na: 1, nb: 1}, owner_in=c.node_ids)
        self.assertEqual(c.redis.call("GET", feed_key(topic, key, "count")), "2")
        self.assertEqual(c.redis.hgetall(feed_key(topic, key, "nodes")), {na: "1", nb: "1"})
        self.assertIn(owner, (na, nb), "the owner is a node without subscribers")
        self.assertEqual(self.wait_single_owner(topic, key, [na, nb]), owner)
        for nid in (na, nb):
            c.node(nid).wait_stats(lambda s, n=c.node(nid): (n.feed(topic, key, s) or {}).get("cluster_count") == 2,
                                   what="%s's /stats cluster_count of %s to be 2" % (nid, key))
        for nid in (na, nb):
            self.assertIn(feed_name(topic, key), c.redis.smembers(node_key(nid, "feeds")))

        # records straight to Kafka reach both, by partition+offset
        recs = []
        for i in range(6):
            recs += [(key, "o%d" % i), ("cust-2", "x%d" % i)]
        produce(c.kafka.bootstrap, topic, recs)
        want = in_kafka(c.kafka.bootstrap, topic, key)
        self.assertEqual(len(want), 6)
        receive_all(a, sa.feed, want, what="client on %s" % na)
        receive_all(b, sb.feed, want, what="client on %s" % nb)

        # the client on the owner's node leaves: the owner keeps consuming
        # for the other node, past the linger
        (leaver, lsub), (stayer, ssub) = ((a, sa), (b, sb)) if owner == na else ((b, sb), (a, sa))
        nstay = stayer.welcome.node_id
        leaver.unsubscribe(lsub.feed)
        self.wait_feed(topic, key, 1, {nstay: 1})
        self.assertEqual(c.redis.call("GET", feed_key(topic, key, "count")), "1")

        def owner_still_assigned():
            st = c.all_stats()
            return (c.owner(topic, key) == owner
                    and self.assigned_nodes(topic, part, st) == [owner])

        self.hold(owner_still_assigned, 3 * LINGER_MS / 1000.0,
                  "owner %s with partition %d assigned while %s still needs %s" % (owner, part, nstay, key))
        produce(c.kafka.bootstrap, topic, [(key, "after-leave-%d" % i) for i in range(3)])
        want2 = {po: v for po, v in in_kafka(c.kafka.bootstrap, topic, key).items() if po not in want}
        self.assertEqual(len(want2), 3)
        receive_all(stayer, ssub.feed, want2, what="remaining client on %s" % nstay)

        # the last one disconnects: count gone, then after the linger no
        # node holds the partition and the owner key is gone
        stayer.close()
        self.c.wait(lambda: c.redis.call("GET", feed_key(topic, key, "count")) in (None, "0")
                    and c.redis.call("EXISTS", feed_key(topic, key, "nodes")) == 0,
                    QUIET, "count and nodes of %s gone after the last client left" % key, feeds=[(topic, key)])
        self.wait_released(topic, key)
        self.assertEqual(c.redis.call("EXISTS", feed_key(topic, key, "owner")), 0)
        for nid in (na, nb):
            self.assertNotIn(feed_name(topic, key), c.redis.smembers(node_key(nid, "feeds")))

    def test_resubscribe_within_linger_keeps_partition(self):
        """Count 1 -> 0 -> 1 inside the linger: nothing is torn down."""
        c = self.c
        topic, key = "orders", key_on(5, "lg")
        a = self.lb_client()
        sa = a.subscribe(topic, key)
        owner = self.wait_feed(topic, key, 1, {a.welcome.node_id: 1}, owner_in=c.node_ids)
        self.wait_single_owner(topic, key, [a.welcome.node_id])
        a.unsubscribe(sa.feed)
        sa = a.subscribe(topic, key)
        self.wait_feed(topic, key, 1, {a.welcome.node_id: 1})
        self.hold(lambda: c.owner(topic, key) == owner
                  and self.assigned_nodes(topic, 5, c.all_stats()) == [owner],
                  3 * LINGER_MS / 1000.0, "owner and partition of %s across an unsubscribe/subscribe" % key)
        produce(c.kafka.bootstrap, topic, [(key, "still-here")])
        receive_all(a, sa.feed, in_kafka(c.kafka.bootstrap, topic, key))

    def test_star_key_is_refused(self):
        """An exact key "*" would collide with the every-key feed's name."""
        a = self.lb_client()
        with self.assertRaises(wire.ServerError) as cm:
            a.subscribe("orders", b"*", raw_key=True)
        self.assertEqual(cm.exception.code, wire.E_INVALID_ARG)
        # the wildcard itself (nil key) is fine and named topic/*
        s = a.subscribe("orders", None)
        self.assertEqual(sorted(s.partitions), list(range(6)))
        self.wait_feed("orders", None, 1, {a.welcome.node_id: 1}, owner_in=self.c.node_ids)


class OwnerFailoverTest(ClusterCase):
    def test_owner_kill9_survivor_takes_over_without_loss(self):
        c = self.c
        topic, key = "orders", key_on(2, "fo")
        a, b = self.lb_client(), self.lb_client()
        na, nb = a.welcome.node_id, b.welcome.node_id
        self.assertNotEqual(na, nb)
        sa = a.subscribe(topic, key)
        sb = b.subscribe(topic, key)
        owner = self.wait_feed(topic, key, 2, {na: 1, nb: 1}, owner_in=(na, nb))
        self.wait_single_owner(topic, key, [na, nb])
        surv, ssub, nsurv = (b, sb, nb) if owner == na else (a, sa, na)

        # a producer writes small batches continuously until told to stop
        stop = threading.Event()
        produced, errors = [], []

        def producer():
            i = 0
            try:
                while not stop.is_set() and i < 5000:
                    batch = [(key, "v%05d" % (i + j)) for j in range(10)]
                    produce(c.kafka.bootstrap, topic, batch)
                    produced.extend(v for _, v in batch)
                    i += 10
            except Exception as e:  # reported by the test
                errors.append(e)

        t = threading.Thread(target=producer, daemon=True)
        t.start()
        try:
            got = {}
            deadline = time.monotonic() + 15
            while len(got) < 30:
                self.assertLess(time.monotonic(), deadline, "records are not flowing before the kill")
                pull(surv, ssub.feed, got, 0.1)

            c.node(owner).kill9()
            t_kill = time.monotonic()

            def survivor_owns():
                pull(surv, ssub.feed, got, 0.02)
                return c.owner(topic, key) == nsurv

            c.wait(survivor_owns, OWNER_DEADLINE, "survivor %s to own %s after %s was killed" % (nsurv, key, owner),
                   feeds=[(topic, key)])
            took = time.monotonic() - t_kill
            # keep producing a little while under the new owner
            n_at_takeover = len(produced)
            c.wait(lambda: pull(surv, ssub.feed, got, 0.02) >= 0 and len(produced) >= n_at_takeover + 30,
                   15, "30 more records produced after the takeover")
        finally:
            stop.set()
            t.join(60)
        self.assertEqual(errors, [])
        self.assertFalse(t.is_alive())

        want = in_kafka(c.kafka.bootstrap, topic, key)
        self.assertEqual(sorted(v.decode() for v in want.values()), sorted(produced))
        receive_all(surv, ssub.feed, want, got=got,
                    what="subscriber on survivor %s (takeover after %.2fs)" % (nsurv, took))
        # the dead owner's subscription is reaped; the survivor owns the feed
        self.wait_feed(topic, key, 1, {nsurv: 1}, owner_in=(nsurv,), timeout=REAP_DEADLINE)
        self.wait_single_owner(topic, key, [nsurv])
        stats = c.node(nsurv).stats()
        self.assertEqual(c.node(nsurv).feed(topic, key, stats).get("role"), "owner")


    def test_owner_dies_before_any_record_nothing_lost(self):
        """The owner relayed no record yet, so no batch recorded where to
        resume: the sync marker it sent the joining node did."""
        c = self.c
        topic, key = "orders", key_on(1, "nr")
        n0, n1 = c.node_ids[:2]
        a = self.node_client(n0)
        a.subscribe(topic, key)
        a.subscribe(topic, key_on(5, "nr-other"))     # n0 reads another partition too
        self.wait_feed(topic, key, 1, {n0: 1}, owner_in=(n0,))
        b = self.node_client(n1)
        sb = b.subscribe(topic, key)
        self.wait_feed(topic, key, 2, {n0: 1, n1: 1}, owner_in=(n0,))
        part = java_partition(key, TOPICS[topic])
        offsets = c.redis.hgetall(feed_key(topic, key, "offsets"))
        self.assertEqual(list(offsets), [str(part)], "the sync marker recorded where to resume, for its partition")
        c.node(n0).kill9()
        produce(c.kafka.bootstrap, topic, [(key, "gap%d" % i) for i in range(5)])
        c.wait(lambda: c.owner(topic, key) == n1, OWNER_DEADLINE,
               "%s to take %s over" % (n1, key), feeds=[(topic, key)])
        produce(c.kafka.bootstrap, topic, [(key, "post%d" % i) for i in range(5)])
        want = in_kafka(c.kafka.bootstrap, topic, key)
        self.assertEqual(len(want), 10)
        receive_all(b, sb.feed, want, what="subscriber on the survivor")


class SharedPartitionTest(ClusterCase):
    """Feeds on one partition owned by different nodes: a node reading the
    partition for a feed it owns also relays another feed of it from the
    other node."""
    NODES = 2

    def test_relayed_feed_not_doubled_by_a_local_partition(self):
        c = self.c
        topic, key = "orders", key_on(3, "dup")
        n0, n1 = c.node_ids
        a = self.node_client(n0)
        sa = a.subscribe(topic, key)              # n0 owns orders/<key>
        self.wait_feed(topic, key, 1, {n0: 1}, owner_in=(n0,))
        b = self.node_client(n1)
        sw = b.subscribe(topic, "*")              # n1 owns orders/*: it reads the key's partition too
        self.wait_feed(topic, None, 1, {n1: 1}, owner_in=(n1,))
        sk = b.subscribe(topic, key)              # ... and relays orders/<key> from n0
        self.wait_feed(topic, key, 2, {n0: 1, n1: 1}, owner_in=(n0,))
        produce(c.kafka.bootstrap, topic, [(key, "d%d" % i) for i in range(5)] + [("other", "x")])
        want = in_kafka(c.kafka.bootstrap, topic, key)
        self.assertEqual(len(want), 5)
        receive_all(a, sa.feed, want, what="client on the owner")
        frames = []

        def take(duration):
            for f in b.collect(duration):
                if f.type == MESSAGE:
                    frames.append(f)

        c.wait(lambda: take(0.1) or len([f for f in frames if f.feed == sk.feed]) >= 5, 15,
               "the key's 5 records on %s" % n1)
        take(1.0)                                 # anything doubled arrives by now
        keyed = sorted((f.partition, f.offset) for f in frames if f.feed == sk.feed)
        self.assertEqual(keyed, sorted(want), "each record once on the relayed feed")
        self.assertEqual(len([f for f in frames if f.feed == sw.feed]), 6)


    def test_takeover_on_a_partition_read_for_another_feed_loses_nothing(self):
        """The survivor already reads the key's partition for orders/*, past
        where the dead owner got to: it reads the partition again from the
        resume offset, and orders/* does not get those records twice."""
        c = self.c
        topic, key = "orders", key_on(4, "tk")
        n0, n1 = c.node_ids
        a = self.node_client(n0)
        a.subscribe(topic, key)                   # n0 owns orders/<key>
        self.wait_feed(topic, key, 1, {n0: 1}, owner_in=(n0,))
        b = self.node_client(n1)
        sw = b.subscribe(topic, "*")              # n1 owns orders/*
        self.wait_feed(topic, None, 1, {n1: 1}, owner_in=(n1,))
        sk = b.subscribe(topic, key)              # relayed from n0
        self.wait_feed(topic, key, 2, {n0: 1, n1: 1}, owner_in=(n0,))
        frames = []

        def take(duration=0.1):
            frames.extend(f for f in b.collect(duration) if f.type == MESSAGE)
            return True

        def on(feed):
            return [(f.partition, f.offset) for f in frames if f.feed == feed]

        produce(c.kafka.bootstrap, topic, [(key, "pre%d" % i) for i in range(5)])
        c.wait(lambda: take() and len(on(sk.feed)) >= 5, 15, "the first records on the relayed feed")

        c.node(n0).kill9()
        # nobody owns the key now; n1 reads these for orders/* only
        produce(c.kafka.bootstrap, topic, [(key, "gap%d" % i) for i in range(5)] + [("other", "o")])
        c.wait(lambda: take() and len(on(sw.feed)) >= 11, 15, "orders/* past the records nobody relayed")
        c.wait(lambda: take() and c.owner(topic, key) == n1, OWNER_DEADLINE,
               "%s to take %s over" % (n1, key), feeds=[(topic, key)])
        produce(c.kafka.bootstrap, topic, [(key, "post%d" % i) for i in range(5)])
        want = in_kafka(c.kafka.bootstrap, topic, key)
        self.assertEqual(len(want), 15)
        c.wait(lambda: take() and set(want) <= set(on(sk.feed)), 15,
               "every record of %s on the survivor's feed" % key, feeds=[(topic, key)])
        take(1.0)                                 # a doubled record arrives by now
        wild = on(sw.feed)
        self.assertEqual(len(wild), len(set(wild)), "orders/* got records twice after the rewind")
        self.assertEqual(len(wild), 16)


class ReapTest(ClusterCase):
    def test_non_owner_kill9_is_reaped(self):
        c = self.c
        k1, k2 = key_on(1, "rp"), key_on(3, "rq")
        x = self.lb_client()
        nx = x.welcome.node_id
        x.subscribe("orders", k1)
        owner = self.wait_feed("orders", k1, 1, {nx: 1}, owner_in=(nx,))
        self.wait_single_owner("orders", k1, [nx])
        victim, other = [n for n in c.node_ids if n != owner][:2]
        v1, v2 = self.node_client(victim), self.node_client(victim)
        o1 = self.node_client(other)
        v1.subscribe("orders", k1)
        v2.subscribe("orders", k1)
        v1.subscribe("orders", k2)         # only the victim: it owns this one
        so = o1.subscribe("demo", None)     # the every-key feed, shared with the victim
        v2.subscribe("demo", None)
        self.wait_feed("orders", k1, 3, {owner: 1, victim: 2}, owner_in=(owner,))
        self.wait_feed("orders", k2, 1, {victim: 1}, owner_in=(victim,))
        self.wait_feed("demo", None, 2, {other: 1, victim: 1}, owner_in=(other, victim))
        r = c.redis
        self.assertIn(victim, c.registered())
        self.assertEqual(r.call("EXISTS", node_key(victim)), 1)
        self.assertEqual(r.smembers(node_key(victim, "feeds")),
                         {feed_name("orders", k1), feed_name("orders", k2), feed_name("demo", None)})
        self.assertEqual(r.hgetall(node_key(victim)).get("addr"), c.node(victim).addr_str)

        c.node(victim).kill9()
        feeds = [("orders", k1), ("orders", k2), ("demo", None)]

        def reaped():
            return (c.feed_state("orders", k1)[:2] == (1, {owner: 1})
                    and c.feed_state("orders", k2)[:2] == (0, {})
                    and c.feed_state("demo", None)[:2] == (1, {other: 1})
                    and victim not in c.registered()
                    and r.call("EXISTS", node_key(victim), node_key(victim, "feeds")) == 0)

        c.wait(reaped, REAP_DEADLINE, "the counts of killed %s reaped" % victim, feeds=feeds)
        self.assertEqual(r.call("GET", feed_key("orders", k2, "count")), None)
        self.assertEqual(r.call("GET", feed_key("orders", k1, "count")), "1")
        # a feed the victim owned gets a live owner; one nobody needs is released
        self.wait_single_owner("demo", None, [other])
        self.wait_single_owner("orders", k1, [owner])
        self.wait_released("orders", k2)
        # and records keep flowing to the survivors
        produce(c.kafka.bootstrap, "demo", [("anything", "after-reap")])
        want = {(m["partition"], m["offset"]): m["value"].encode()
                for m in consume(c.kafka.bootstrap, "demo") if m["value"] == "after-reap"}
        receive_all(o1, so.feed, want, what="every-key subscriber on %s" % other)


class RedisRestartTest(ClusterCase):
    FEEDS = [("orders", key_on(0, "rr")), ("orders", key_on(3, "rs")), ("demo", None), ("demo", "u1")]

    def build_state(self):
        """Six clients through HAProxy (two per node), subscribed to FEEDS in
        a fixed pattern; waits until Redis agrees. Returns [(client,
        {feed: handle})]."""
        holders = [(0, 1, 2), (3, 4), (1, 4, 5), (5,)]   # feed i: held by these clients
        clients = [self.lb_client() for _ in range(6)]
        subs = [dict() for _ in clients]
        for fi, who in enumerate(holders):
            topic, key = self.FEEDS[fi]
            for ci in who:
                subs[ci][(topic, key)] = clients[ci].subscribe(topic, key).feed
        for topic, key in self.FEEDS:
            nodes = {}
            for cl, s in zip(clients, subs):
                if (topic, key) in s:
                    nodes[cl.welcome.node_id] = nodes.get(cl.welcome.node_id, 0) + 1
            self.wait_feed(topic, key, sum(nodes.values()), nodes, owner_in=self.c.node_ids)
        return list(zip(clients, subs))

    def snapshot(self):
        """What Redis says about FEEDS and the nodes, in comparable form."""
        r = self.c.redis
        snap = {"nodes": sorted(self.c.registered())}
        for topic, key in self.FEEDS:
            snap[feed_name(topic, key)] = self.c.feed_state(topic, key)
        for nid in self.c.node_ids:
            info = r.hgetall(node_key(nid))
            snap["node " + nid] = {f: info.get(f) for f in NODE_FIELDS}
            snap["feeds of " + nid] = sorted(r.smembers(node_key(nid, "feeds")))
        return snap

    def check_flow(self, state, tag):
        """One record per feed; every subscriber receives it."""
        c = self.c
        for topic in ("orders", "demo"):
            recs = [(key if key is not None else "any", "%s-%s" % (tag, key)) for t, key in self.FEEDS if t == topic]
            produce(c.kafka.bootstrap, topic, recs)
        for cl, subs in state:
            for (topic, key), handle in subs.items():
                # the every-key feed gets every record of its topic
                want = ((lambda v: v.startswith(tag.encode() + b"-")) if key is None
                        else ("%s-%s" % (tag, key)).encode())
                self.expect_record(cl, handle, want, "%s record of %s on the client on %s" % (
                    tag, feed_name(topic, key), cl.welcome.node_id), feeds=self.FEEDS)

    def wait_info_current(self):
        """Waits until every node's info hash in Redis shows the connections
        its /stats shows (the hash is refreshed periodically, not on every
        change): the quiet point to take a snapshot at."""
        def ok():
            return all(self.c.redis.hgetall(node_key(n.node_id)).get("connections") == str(n.stats()["connections"])
                       for n in self.c.nodes)

        self.c.wait(ok, QUIET, "each node's %s connections field to match its /stats" % node_key("ID"))

    def test_restart_with_no_data_rebuilds_exactly(self):
        c = self.c
        state = self.build_state()
        self.wait_info_current()
        before = self.snapshot()
        for nid in c.node_ids:
            self.assertIsNotNone(before["node " + nid]["addr"], "node %s has no addr field" % nid)
        self.check_flow(state, "before")
        c.redis.restart(keep_data=False)
        last = [None]

        def rebuilt():
            last[0] = self.snapshot()
            return last[0] == before

        try:
            c.wait(rebuilt, QUIET, "Redis rebuilt after a restart with no data", feeds=self.FEEDS)
        except WaitTimeout as e:
            diff = ["  %s: before %r, now %r" % (k, before[k], last[0].get(k))
                    for k in before if before[k] != (last[0] or {}).get(k)]
            raise AssertionError("%s\ndifferences:\n%s" % (e, "\n".join(diff))) from None
        for nid in c.node_ids:
            self.assertEqual(c.node(nid).stats().get("redis"), "connected")
        self.check_flow(state, "after")

    def test_redis_down_refuses_new_keeps_local_flowing(self):
        c = self.c
        topic, key = "orders", key_on(4, "dn")
        a = self.lb_client()
        na = a.welcome.node_id
        sa = a.subscribe(topic, key)
        self.wait_feed(topic, key, 1, {na: 1}, owner_in=(na,))
        self.wait_single_owner(topic, key, [na])
        b = self.lb_client()
        nb = b.welcome.node_id
        self.assertNotEqual(na, nb)
        sb = b.subscribe(topic, key)
        self.wait_feed(topic, key, 2, {na: 1, nb: 1}, owner_in=(na,))
        before = c.feed_state(topic, key)

        c.redis.kill9()
        for n in c.nodes:
            n.wait_stats(lambda s: s.get("redis") == "down", timeout=QUIET, what="%s to see Redis down" % n.node_id)
        # new subscriptions are refused with UNAVAILABLE; the connection stays
        with self.assertRaises(wire.ServerError) as cm:
            a.subscribe(topic, key_on(4, "new"))
        self.assertEqual(cm.exception.code, wire.E_UNAVAILABLE)
        self.assertEqual(a.ping(9).token, 9)
        # the feed keeps flowing on the owner's node
        produce(c.kafka.bootstrap, topic, [(key, "during-outage")])
        self.expect_record(a, sa.feed, b"during-outage", "record of a locally owned feed while Redis is down",
                           feeds=[(topic, key)])

        c.redis.start()
        c.wait(lambda: c.feed_state(topic, key) == before, QUIET,
               "%s re-asserted after Redis came back empty" % key, feeds=[(topic, key)])
        for n in c.nodes:
            n.wait_stats(lambda s: s.get("redis") == "connected", timeout=QUIET,
                         what="%s to see Redis connected" % n.node_id)
        s2 = a.subscribe(topic, key_on(4, "new"))
        self.wait_feed(topic, key_on(4, "new"), 1, {na: 1}, owner_in=c.node_ids)
        produce(c.kafka.bootstrap, topic, [(key, "after-outage"), (key_on(4, "new"), "new-after")])
        feeds = [(topic, key), (topic, key_on(4, "new"))]
        self.expect_record(a, sa.feed, b"after-outage", "record on the owner's node after the outage", feeds)
        self.expect_record(b, sb.feed, b"after-outage", "record on the relay node after the outage", feeds)
        self.expect_record(a, s2.feed, b"new-after", "record of a feed subscribed after the outage", feeds)


class RaceTest(ClusterCase):
    ROUNDS = 20

    def test_subscribe_unsubscribe_race_across_nodes(self):
        """Six clients, two per node, subscribe/unsubscribe one feed ROUNDS
        times at once; the even ones end subscribed. At the quiet point the
        count is exactly theirs and a record reaches each of them."""
        c = self.c
        topic, key = "orders", key_on(4, "race")
        clients = [self.lb_client() for _ in range(6)]
        self.assertEqual(sorted({cl.welcome.node_id for cl in clients}), sorted(c.node_ids))
        barrier = threading.Barrier(len(clients))
        final = {}
        errors = []

        def churn(i, cl):
            rng = random.Random(i)
            try:
                barrier.wait(10)
                for _ in range(self.ROUNDS):
                    s = cl.subscribe(topic, key)
                    if rng.random() < 0.5:
                        time.sleep(rng.random() * 0.003)
                    cl.unsubscribe(s.feed)
                if i % 2 == 0:
                    final[i] = cl.subscribe(topic, key).feed
            except Exception as e:  # reported by the test
                errors.append((i, e))

        threads = [threading.Thread(target=churn, args=(i, cl), daemon=True) for i, cl in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        live = {}
        for i in final:
            nid = clients[i].welcome.node_id
            live[nid] = live.get(nid, 0) + 1
        self.wait_feed(topic, key, len(final), live, owner_in=c.node_ids)
        self.wait_single_owner(topic, key, list(live))
        produce(c.kafka.bootstrap, topic, [(key, "after-race")])
        for i, handle in final.items():
            self.expect_record(clients[i], handle, b"after-race", "record after the race on client %d (%s)"
                               % (i, clients[i].welcome.node_id), feeds=[(topic, key)])
        for i, cl in enumerate(clients):
            if i not in final:
                late = [f for f in cl.collect(0.3) if f.type == MESSAGE and f.value == b"after-race"]
                self.assertEqual(late, [], "client %d unsubscribed but got the record" % i)


class ChurnTest(ClusterCase):
    """Seeded random churn: subscribe, unsubscribe, disconnect and one node
    restart (kill -9 + start), with invariants 1-3 checked at quiet points.
    SUBWAY_CHURN_SEED=N replays a run."""

    EXTRA_ARGS = ("--heartbeat-timeout-ms", "120000")   # clients idle between quiet points
    CLIENTS = 10
    STEPS = 120
    QUIET_EVERY = 30
    FEEDS = [("orders", key_on(0, "ch")), ("orders", key_on(1, "ch")), ("orders", key_on(3, "ch")),
             ("demo", None), ("demo", "u1")]

    def test_churn(self):
        seed = int(os.environ.get("SUBWAY_CHURN_SEED") or random.SystemRandom().randrange(1 << 30))
        print("\nchurn seed=%d (SUBWAY_CHURN_SEED=%d replays it)" % (seed, seed))
        self.rng = random.Random(seed)
        self.history = []
        self.tally = {"subscribe": 0, "unsubscribe": 0, "disconnect": 0, "closed under it": 0,
                      "quiet points": 0, "most live subscriptions": 0}
        try:
            self.run_churn()
        except Exception as e:
            raise AssertionError("churn seed=%d (SUBWAY_CHURN_SEED=%d replays it): %s\nlast steps:\n  %s" % (
                seed, seed, e, "\n  ".join(self.history[-25:]))) from e

    # ---- the model: slot i -> {"client", "node", "subs": {feed index: handle}}

    def connect(self, slot):
        cl = self.c.client()
        slot.update(client=cl, node=cl.welcome.node_id, subs={})
        self.addCleanup(cl.close)

    def drop(self, slot):
        if slot["client"] is not None:
            slot["client"].close()
        slot.update(client=None, node=None, subs={})

    def step(self, i, slot):
        rng = self.rng
        if slot["client"] is None:
            self.connect(slot)
            self.history.append("%d: client %d connects -> %s" % (i, slot["n"], slot["node"]))
        r = rng.random()
        node = slot["node"]
        held = sorted(slot["subs"])
        free = [f for f in range(len(self.FEEDS)) if f not in slot["subs"]]
        try:
            if (r < 0.5 and free) or not held:
                f = rng.choice(free)
                slot["subs"][f] = slot["client"].subscribe(*self.FEEDS[f]).feed
                what = "subscribes %s" % feed_name(*self.FEEDS[f])
                self.tally["subscribe"] += 1
            elif r < 0.85:
                f = rng.choice(held)
                slot["client"].unsubscribe(slot["subs"].pop(f))
                what = "unsubscribes %s" % feed_name(*self.FEEDS[f])
                self.tally["unsubscribe"] += 1
            else:
                self.drop(slot)
                what = "disconnects"
                self.tally["disconnect"] += 1
        except wire.ConnectionClosed:
            # its node was killed under it: everything it held is gone
            self.drop(slot)
            what = "finds its connection closed"
            self.tally["closed under it"] += 1
        self.history.append("%d: client %d on %s %s" % (i, slot["n"], node, what))

    def run_churn(self):
        c = self.c
        self.slots = [{"n": n, "client": None, "node": None, "subs": {}} for n in range(self.CLIENTS)]
        restart_at = self.rng.randrange(self.STEPS // 4, 3 * self.STEPS // 4)
        for i in range(1, self.STEPS + 1):
            if i == restart_at:
                victim = self.rng.choice(c.node_ids)
                self.history.append("%d: kill -9 %s, start again" % (i, victim))
                c.node(victim).kill9()
                for slot in self.slots:
                    if slot["node"] == victim:
                        self.drop(slot)
                c.node(victim).start()
                c.wait_registered(victim)
                self.quiet_point("after restarting %s" % victim)
            self.step(i, self.rng.choice(self.slots))
            if i % self.QUIET_EVERY == 0:
                self.quiet_point("step %d" % i)
        self.quiet_point("end")
        print("churn: %s" % ", ".join("%s %d" % kv for kv in self.tally.items()))
        for slot in self.slots:
            self.drop(slot)
        for topic, key in self.FEEDS:
            self.wait_released(topic, key, RELEASE_DEADLINE + REAP_DEADLINE)

    def expected(self):
        """{feed index: {node: live subscriptions}} from the model."""
        out = {f: {} for f in range(len(self.FEEDS))}
        for slot in self.slots:
            for f in slot["subs"]:
                out[f][slot["node"]] = out[f].get(slot["node"], 0) + 1
        return out

    def quiet_point(self, label):
        self.check_invariants(label)
        self.check_flow(label)

    def check_invariants(self, label):
        """Invariants 1-3 of the module docstring, once the cluster settled."""
        c = self.c
        self.history.append("quiet point: " + label)
        exp = self.expected()
        self.tally["quiet points"] += 1
        live = sum(sum(n.values()) for n in exp.values())
        self.tally["most live subscriptions"] = max(self.tally["most live subscriptions"], live)

        # invariant 1: count and per-node counts == the live subscriptions
        def counts_exact():
            return all(c.feed_state(*self.FEEDS[f])[:2] == (sum(n.values()), n) for f, n in exp.items())

        c.wait(counts_exact, REAP_DEADLINE + QUIET,
               "invariant 1 at %s: counts == live subscriptions %s" % (
                   label, {feed_name(*self.FEEDS[f]): n for f, n in exp.items()}), feeds=self.FEEDS)

        # invariant 2: a feed with count > 0 has one owner, a live node that
        # says so; no other node claims it
        def owners_ok():
            stats = c.all_stats()
            for f, nodes in exp.items():
                topic, key = self.FEEDS[f]
                roles = self.roles(topic, key, stats)
                claimed = [n for n, r in roles.items() if r == "owner"]
                if len(claimed) > 1:
                    raise AssertionError("%s has %d owners: %s" % (feed_name(topic, key), len(claimed), roles))
                if nodes:
                    owner = c.owner(topic, key)
                    if owner not in stats or claimed != [owner]:
                        return False
            return True

        c.wait(owners_ok, OWNER_DEADLINE, "invariant 2 at %s: one live owner per feed with count > 0" % label,
               feeds=self.FEEDS)

        # invariant 3: after the linger, partitions are assigned only where
        # an owned feed with count > 0 needs them, and on its owner
        def assignments_ok():
            stats = c.all_stats()
            need = {nid: set() for nid in stats}
            for f, nodes in exp.items():
                topic, key = self.FEEDS[f]
                owner = c.owner(topic, key)
                if not nodes:
                    if owner is not None:
                        return False
                    continue
                if owner not in need:
                    return False
                need[owner] |= {(topic, p) for p in feed_partitions(topic, key)}
            for nid, s in stats.items():
                have = {(a["topic"], a["partition"]) for a in s["assigned"]}
                if have != need[nid]:
                    return False
            return True

        c.wait(assignments_ok, RELEASE_DEADLINE, "invariant 3 at %s: partitions assigned exactly for "
               "owned feeds with count > 0" % label, feeds=self.FEEDS)

    def check_flow(self, label):
        """Records flow: one per live feed reaches every subscriber."""
        c = self.c
        exp = self.expected()
        tag = "q%d" % len(self.history)
        by_topic = {}
        for f, nodes in exp.items():
            if nodes:
                topic, key = self.FEEDS[f]
                by_topic.setdefault(topic, []).append(("k-any" if key is None else key, "%s-%d" % (tag, f)))
        for topic, recs in by_topic.items():
            produce(c.kafka.bootstrap, topic, recs)
        for slot in self.slots:
            for f, handle in slot["subs"].items():
                topic, key = self.FEEDS[f]
                if key is None:
                    want = {v.encode() for t, recs in by_topic.items() if t == topic for _, v in recs}
                else:
                    want = {("%s-%d" % (tag, f)).encode()}
                for v in want:
                    self.expect_record(slot["client"], handle, v, "record %r of %s on client %d (%s)" % (
                        v, feed_name(topic, key), slot["n"], slot["node"]), feeds=self.FEEDS)
            if slot["client"] is not None:
                slot["client"].collect(0.01)   # answer PINGs, drop what is left
