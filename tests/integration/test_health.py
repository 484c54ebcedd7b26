"""test_health.py -- /healthz says the node is alive, /readyz whether it should get new clients: Kafka answering, Redis current, not draining.

Kafka goes away by SIGSTOP of the mock (its sockets stay open and silent:
the probe times out), Redis by a kill and a restart. Each change is also
one log line.
"""

import signal
import time

from harness import TestCase, wait_until
import wire


def readyz(node):
    status, body = node.http_get("/readyz")
    return status, body.strip()


class ReadinessTest(TestCase):
    def test_kafka_silent_makes_a_node_not_ready_until_it_answers(self):
        kafka = self.mock_kafka({"h": 1})
        n = self.node(kafka.bootstrap)
        wait_until(lambda: readyz(n) == (200, "ready"), 15, "ready once Kafka answered")
        n.proc.wait_log(r"^subway\[[^]]+\]: kafka: reachable", timeout=5)
        kafka.proc.pause()
        try:
            wait_until(lambda: readyz(n)[0] == 503, 20, "not ready while Kafka is silent")
            status, body = readyz(n)
            self.assertRegex(body, r"^not ready: kafka: unreachable: ")
            self.assertEqual(n.http_get("/healthz")[0], 200, "alive all the same")
            n.proc.wait_log(r"^subway\[[^]]+\]: warn: kafka: unreachable", timeout=5)
        finally:
            kafka.proc.resume()
        wait_until(lambda: readyz(n) == (200, "ready"), 20, "ready again once Kafka answers")

    def test_redis_down_makes_a_cluster_node_not_ready(self):
        cl = self.cluster({"h": 1}, nodes=1, haproxy=False, node_args=["--redis-timeout-ms", "500"])
        n = cl.nodes[0]
        wait_until(lambda: readyz(n) == (200, "ready"), 15, "ready")
        cl.redis.down()
        wait_until(lambda: readyz(n)[0] == 503, 15, "not ready while Redis is down")
        self.assertIn("redis: not connected", readyz(n)[1])
        cl.redis.up()
        wait_until(lambda: readyz(n) == (200, "ready"), 20, "ready again under a new registration")

    def test_draining_node_is_alive_but_not_ready(self):
        kafka = self.mock_kafka({"h": 1})
        n = self.node(kafka.bootstrap, ["--drain-timeout-ms", "5000"])
        wait_until(lambda: readyz(n) == (200, "ready"), 15, "ready")
        c = self.client(n)             # keeps the drain waiting for it
        n.proc.signal(signal.SIGTERM)
        wait_until(lambda: readyz(n)[0] == 503, 5, "not ready once draining")
        self.assertEqual(readyz(n)[1], "not ready: draining")
        self.assertEqual(n.http_get("/healthz"), (200, "ok\n"))
        c.close()
        self.assertEqual(n.proc.wait_exit(10), 0)


class KafkaAwayTest(TestCase):
    def test_publish_is_answered_within_the_publish_timeout(self):
        """A PUBLISH Kafka cannot take gets ERROR KAFKA within
        --publish-timeout-ms, not librdkafka's five minutes."""
        kafka = self.mock_kafka({"pt": 1})
        n = self.node(kafka.bootstrap, ["--publish-timeout-ms", "1500"])
        c = self.client(n)
        c.publish("pt", "k", "before")          # the topic and its leader are known
        kafka.proc.pause()
        try:
            t0 = time.monotonic()
            with self.assertRaises(wire.ServerError) as cm:
                c.publish("pt", "k", "while away", timeout=15)
            self.assertEqual(cm.exception.code, wire.E_KAFKA)
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn("timed out", cm.exception.frame.text)
        finally:
            kafka.proc.resume()
        self.assertEqual(c.publish("pt", "k", "after").partition, 0)


class StateLogTest(TestCase):
    def test_takeover_logs_the_reap_and_a_sample_of_the_new_ownerships(self):
        """A node dies owning 100 feeds: the survivor logs that it reaps it,
        and its new ownerships as at most LOG_LIMIT_PER_S lines a second
        plus how many it left out, not 100 lines."""
        cl = self.cluster({"many": 4}, nodes=2, haproxy=False,
                          node_args=["--lease-ms", "1000", "--node-ttl-ms", "1000", "--reap-interval-ms", "250"])
        a, b = cl.nodes
        ca, cb = self.client(a), self.client(b)
        keys = ["k%03d" % i for i in range(100)]
        for k in keys:
            ca.subscribe("many", k)
        for k in keys:
            cb.subscribe("many", k)
        self.assertEqual({cl.owner("many", k) for k in keys}, {a.node_id})
        a.kill9()
        wait_until(lambda: {cl.owner("many", k) for k in keys} == {b.node_id}, 30, "every feed taken over")
        b.proc.wait_log(r"^subway\[[^]]+\]: coordination: node %s reaps node %s " % (b.node_id, a.node_id), timeout=10)
        lines = [l for l in b.proc.stderr().splitlines() if "this node (%s) is the owner now" % b.node_id in l]
        self.assertLess(len(lines), 100, "one line per feed")
        b.proc.wait_log(r"more lines like the last one left out this second", timeout=5)
