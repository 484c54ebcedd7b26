"""test_sentinel.py -- nodes that find their Redis through Sentinel follow a failover: real master, replica and redis-sentinel.

Two nodes (--redis-sentinel, --redis-master) hold one feed while a producer
writes. The master is killed (-9); Sentinel promotes the replica; the nodes
ask Sentinel again, start new sessions on the new master and re-assert:
counts are exact there, one node owns the feed, and every subscriber got
every record Kafka holds, none twice.
"""

import os
import shutil
import unittest

from harness import MockKafka, Node, Proc, Redis, TestCase, free_port, owner_node, redis_call, tmp_path, wait_until
from test_cluster import TOPICS, key_on
from test_faults import REDIS_TIMEOUT_MS, Producer, Subscriber, in_kafka

MASTER = "subway-test"
NODE_ARGS = ["--linger-ms", 300, "--lease-ms", 1000, "--node-ttl-ms", 1000, "--reap-interval-ms", 250,
             "--redis-timeout-ms", REDIS_TIMEOUT_MS]


def _sentinel_argv(conf):
    exe = shutil.which("redis-sentinel")
    if exe:
        return [exe, conf]
    return [shutil.which("redis-server"), conf, "--sentinel"]


class Sentinel:
    """One redis-sentinel watching master_port as MASTER (quorum 1, a master
    down after 500 ms, failovers allowed every 2 s)."""

    def __init__(self, master_port):
        self.port = free_port()
        d = tmp_path("sentinel-%d" % self.port)
        os.makedirs(d)
        conf = os.path.join(d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (self.port, d))
            f.write("sentinel monitor %s 127.0.0.1 %d 1\n" % (MASTER, master_port))
            f.write("sentinel down-after-milliseconds %s 500\n" % MASTER)
            f.write("sentinel failover-timeout %s 2000\n" % MASTER)
        self.proc = Proc(_sentinel_argv(conf), name="sentinel-%d" % self.port)
        self.proc.wait_ready(lambda: self.master() == ["127.0.0.1", str(master_port)], 15,
                             "Sentinel to know master %s" % MASTER)

    def master(self):
        try:
            return redis_call(self.port, "SENTINEL", "get-master-addr-by-name", MASTER)
        except OSError:
            return None

    def stop(self):
        self.proc.stop()


class SentinelFailoverTest(TestCase):
    def test_failover_converges_with_exact_counts_and_nothing_lost(self):
        if not shutil.which("redis-sentinel") and not shutil.which("redis-server"):
            raise unittest.SkipTest("no redis-sentinel")
        master = self.redis()
        replica = Redis()
        self.addCleanup(replica.stop)
        replica.call("REPLICAOF", "127.0.0.1", str(master.port))
        wait_until(lambda: "master_link_status:up" in replica.call("INFO", "replication"), 15, "the replica in sync")
        sentinel = Sentinel(master.port)
        self.addCleanup(sentinel.stop)
        kafka = self.mock_kafka(TOPICS)
        nodes = []
        for i in (1, 2):
            n = Node(kafka.bootstrap, ["--redis-sentinel", "127.0.0.1:%d" % sentinel.port, "--redis-master", MASTER,
                                       "--node-id", "s%d" % i] + NODE_ARGS, name="subway-s%d" % i)
            self.addCleanup(n.stop)
            nodes.append(n)
        for nid in ("s1", "s2"):
            wait_until(lambda: master.call("HEXISTS", "subway:nodes", nid) == 1, 15, "%s registered" % nid)
        key = key_on(1, "sent")
        subs = [Subscriber(self.client(n), "orders", key, n.name) for n in nodes]
        count_key = "subway:feed:{orders/%s}:count" % key
        wait_until(lambda: master.call("GET", count_key) == "2", 10, "count 2 on the master")
        producer = Producer(kafka.bootstrap, "orders", key)
        producer.start()
        self.addCleanup(producer.stop_ev.set)
        producer.wait_more(30)

        master.kill9()
        wait_until(lambda: sentinel.master() == ["127.0.0.1", str(replica.port)], 20,
                   "Sentinel to promote the replica", interval=0.1)
        producer.wait_more(50)

        def settled():
            for s in subs:
                s.pull(0.01)
            owner = replica.call("GET", "subway:feed:{orders/%s}:owner" % key)
            return (replica.call("GET", count_key) == "2"
                    and replica.hgetall("subway:feed:{orders/%s}:nodes" % key) == {"s1": "1", "s2": "1"}
                    and owner_node(owner) in ("s1", "s2"))

        wait_until(settled, 20, "exact counts and an owner on the new master")
        producer.finish()
        want = set(in_kafka(kafka.bootstrap, "orders", key))
        self.assertEqual(len(want), producer.n)

        def all_in():
            for s in subs:
                s.pull(0.02)
            return all(s.has(want) for s in subs)

        wait_until(all_in, 20, "every subscriber to get every record")
        for s in subs:
            self.assertEqual(len(s.seen), len(set(s.seen)), "%s got records twice" % s.node_id)
            self.assertEqual(s.dropped, 0)
        for n in nodes:
            self.assertIn("through Sentinel", n.proc.stderr())
