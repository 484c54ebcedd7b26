"""test_nemesis.py -- checks the fault-injection layer itself against a real redis-server:
the TCP proxy (forward, cut/heal, reset, close), process pause/resume, Redis
with an append-only file and down()/up(), Cluster(redis_proxy=True), and the
schema helpers that read both forms of the owner key and of subway:nodes.

A failure here means the nemesis is broken, not the cluster.
"""

import select
import socket
import threading
import time

import harness
from harness import Cluster, TestCase, feed_key, owner_node, redis_call, wait_until
import nemesis
from nemesis import TcpProxy

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"
# how long a partitioned or paused peer is given to (wrongly) answer
SILENCE = 1.0


# The sanitizer pass of make test leaves these to the plain pass (run.py --after-plain).
PLAIN_ONLY = 'the test harness itself'


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(sock, n, timeout=5.0):
    """n bytes from sock; fails on EOF or at the deadline."""
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("got %r of %d bytes within %.1fs" % (out, n, timeout))
        sock.settimeout(left)
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise AssertionError("EOF after %r of %d bytes" % (out, n))
        out += chunk
    return out


def silent_for(sock, seconds):
    """True when nothing (no byte, no EOF, no error) arrives on sock for
    seconds: the connection is open and quiet."""
    r, _, _ = select.select([sock], [], [], seconds)
    return not r


def client_count(redis):
    """Clients connected to redis, not counting the connection asking."""
    return int(redis.call("INFO", "clients").split("connected_clients:")[1].split()[0]) - 1


def closed_by_peer(sock, timeout=5.0):
    """True when sock sees EOF or a reset within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            if sock.recv(4096) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class TcpProxyTest(TestCase):
    def setUp(self):
        self.r = self.redis()
        self.p = self.tcp_proxy("127.0.0.1", self.r.port)

    def sock(self):
        s = connect(self.p.port)
        self.addCleanup(s.close)
        return s

    def test_forwards_both_ways(self):
        p = self.p
        self.assertEqual(p.addr_str, "127.0.0.1:%d" % p.port)
        self.assertNotEqual(p.port, self.r.port)
        self.assertEqual(redis_call(p.port, "PING"), "PONG")
        # bigger than the proxy's per-direction buffer, both ways
        big = "x" * (1024 * 1024 + 7)
        self.assertEqual(redis_call(p.port, "SET", "big", big), "OK")
        self.assertEqual(redis_call(p.port, "GET", "big"), big)
        self.assertEqual(self.r.call("STRLEN", "big"), len(big))
        # one connection each, closed by the client: the proxy closes both ends
        wait_until(lambda: p.connections == 0 and client_count(self.r) == 0, 5,
                   "the proxied connections to end")
        self.assertEqual(p.accepted, 3)

    def test_many_connections(self):
        p = self.p
        socks = [self.sock() for _ in range(60)]
        for s in socks:
            s.sendall(PING)
        for s in socks:
            self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        self.assertEqual(p.connections, 60)
        self.assertEqual(client_count(self.r), 60)
        for s in socks[:30]:
            s.close()
        wait_until(lambda: p.connections == 30 and client_count(self.r) == 30, 5, "30 connections left")
        errors = []

        def worker(i):
            try:
                for j in range(20):
                    if redis_call(p.port, "INCR", "n") is None:
                        errors.append("nil")
            except Exception as e:
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(self.r.call("GET", "n"), "160")

    def test_cut_holds_and_heal_delivers(self):
        p, r = self.p, self.r
        s = self.sock()
        s.sendall(PING)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        sub = self.sock()
        sub.sendall(harness._resp_encode(["SUBSCRIBE", "ch"]))
        hello = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        self.assertEqual(recv_exactly(sub, len(hello)), hello)

        p.cut()
        self.assertTrue(p.is_cut)
        # a request sent during the cut gets no answer, and no EOF either
        s.sendall(PING)
        # the other way: Redis still has its subscriber (the proxy's upstream
        # connection stays open) and sends it a message the cut holds
        self.assertEqual(r.call("PUBLISH", "ch", "during-cut"), 1)
        # a connection made during the cut: accepted and held, no round trip
        late = self.sock()
        late.sendall(PING)
        self.assertTrue(silent_for(s, SILENCE), "a reply crossed the cut")
        self.assertTrue(silent_for(sub, 0.1), "a published message crossed the cut")
        self.assertTrue(silent_for(late, 0.1), "a connection made during the cut got a reply")
        wait_until(lambda: p.connections == 3, 5, "the proxy to accept the late connection")
        self.assertEqual(client_count(r), 2)   # the late one has no upstream yet

        p.heal()
        self.assertFalse(p.is_cut)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        self.assertEqual(recv_exactly(late, len(PONG)), PONG)
        msg = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$10\r\nduring-cut\r\n"
        self.assertEqual(recv_exactly(sub, len(msg)), msg)
        # and the connections work as before
        s.sendall(PING)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        self.assertEqual(client_count(r), 3)

    def test_cut_and_heal_idempotent_pipelined(self):
        """Pipelined requests sent during a cut all arrive, in order, after
        the heal; cut() and heal() twice are the same as once."""
        p = self.p
        s = self.sock()
        s.sendall(PING)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        p.cut()
        p.cut()   # idempotent
        s.sendall(PING * 3)
        self.assertTrue(silent_for(s, 0.3))
        p.heal()
        p.heal()
        self.assertEqual(recv_exactly(s, 3 * len(PONG)), PONG * 3)

    def test_reset_closes_every_connection(self):
        p, r = self.p, self.r
        socks = [self.sock() for _ in range(3)]
        for s in socks:
            s.sendall(PING)
            self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        self.assertEqual(p.reset(), 3)
        self.assertEqual(p.connections, 0)
        for s in socks:
            self.assertTrue(closed_by_peer(s), "the client's connection survived reset()")
        wait_until(lambda: client_count(r) == 0, 5, "Redis to see its proxied clients gone")
        # the proxy itself keeps working
        self.assertEqual(redis_call(p.port, "PING"), "PONG")

    def test_reset_during_a_cut_stays_cut(self):
        p = self.p
        s = self.sock()
        s.sendall(PING)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        p.cut()
        self.assertEqual(p.reset(), 1)
        self.assertTrue(closed_by_peer(s))
        late = self.sock()
        late.sendall(PING)
        self.assertTrue(silent_for(late, 0.3))
        p.heal()
        self.assertEqual(recv_exactly(late, len(PONG)), PONG)

    def test_target_down_then_up(self):
        p, r = self.p, self.r
        r.down()
        self.assertTrue(r.is_down)
        # the proxy accepts, its upstream connect is refused, and it resets
        # the client's connection: seen as EOF or a reset, possibly while
        # connect() itself still runs
        try:
            s = self.sock()
        except ConnectionResetError:
            pass
        else:
            self.assertTrue(closed_by_peer(s))
        wait_until(lambda: p.connections == 0 and p.accepted == 1, 5, "the refused connection to be dropped")
        r.up()
        self.assertFalse(r.is_down)
        self.assertEqual(redis_call(p.port, "PING"), "PONG")

    def test_close_joins_and_closes(self):
        p = TcpProxy("127.0.0.1", self.r.port, name="proxy-to-close")
        self.assertEqual([t.name for t in threading.enumerate()].count("proxy-to-close"), 1)
        s = connect(p.port)
        self.addCleanup(s.close)
        s.sendall(PING)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        p.close()
        p.close()   # safe twice
        self.assertEqual([t.name for t in threading.enumerate()].count("proxy-to-close"), 0)
        self.assertNotIn(p, nemesis.open_proxies())
        self.assertTrue(closed_by_peer(s))
        self.assertFalse(harness.port_open(p.port))
        with self.assertRaises(AssertionError):
            p.cut()


class PauseTest(TestCase):
    def test_pause_and_resume_redis(self):
        r = self.redis()
        s = connect(r.port)
        self.addCleanup(s.close)
        r.pause()
        self.assertTrue(r.proc.paused)
        self.assertTrue(r.proc.alive())
        s.sendall(PING)
        self.assertTrue(silent_for(s, SILENCE), "a paused redis-server answered")
        r.resume()
        self.assertFalse(r.proc.paused)
        self.assertEqual(recv_exactly(s, len(PONG)), PONG)
        self.assertEqual(r.call("PING"), "PONG")

    def test_stop_of_a_paused_process(self):
        r = self.redis()
        r.pause()
        t0 = time.monotonic()
        rc = r.stop()
        # SIGTERM handled (redis exits 0 on it), not the SIGKILL after 5 s
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertFalse(r.proc.paused)
        # kill() of a paused process too
        r.start()
        r.pause()
        r.kill9()
        self.assertFalse(r.alive())
        with self.assertRaises(AssertionError):
            r.proc.pause()   # not running


class RedisPersistenceTest(TestCase):
    def test_appendonly_restart_keeps_data(self):
        r = self.redis(appendonly=True)
        self.assertEqual(r.call("CONFIG", "GET", "appendonly"), ["appendonly", "yes"])
        self.assertEqual(r.call("CONFIG", "GET", "appendfsync"), ["appendfsync", "always"])
        self.assertEqual(r.call("CONFIG", "GET", "save"), ["save", ""])
        r.call("SET", "k", "v1")
        r.call("HSET", "h", "f", "1")
        pid = r.proc.pid
        r.restart(keep_data=True)          # kill -9 with no SAVE: the AOF has it
        self.assertNotEqual(r.proc.pid, pid)
        self.assertEqual(r.call("GET", "k"), "v1")
        self.assertEqual(r.hgetall("h"), {"f": "1"})
        r.restart(keep_data=False)
        self.assertEqual(r.call("DBSIZE"), 0)
        r.call("SET", "k", "v2")
        r.restart(keep_data=True)
        self.assertEqual(r.call("GET", "k"), "v2")

    def test_down_and_up(self):
        r = self.redis(appendonly=True)
        r.call("SET", "k", "before")
        r.down()
        self.assertTrue(r.is_down)
        self.assertFalse(r.alive())
        with self.assertRaises(OSError):
            redis_call(r.port, "PING", timeout=1)
        with self.assertRaises(AssertionError):
            r.down()
        r.up(keep_data=True)
        self.assertEqual(r.call("GET", "k"), "before")
        with self.assertRaises(AssertionError):
            r.up()
        r.down()
        r.up(keep_data=False)
        self.assertEqual(r.call("DBSIZE"), 0)

    def test_down_without_aof(self):
        r = self.redis()
        r.call("SET", "k", "v")
        r.down()
        r.up(keep_data=True)              # nothing on disk: a crash lost it
        self.assertIsNone(r.call("GET", "k"))
        r.call("SET", "k", "v")
        r.down(save=True)
        r.up(keep_data=True)
        self.assertEqual(r.call("GET", "k"), "v")


class SchemaHelpersTest(TestCase):
    def test_owner_node(self):
        self.assertEqual(owner_node("n1"), "n1")
        self.assertEqual(owner_node("n1:1f"), "n1")
        self.assertEqual(owner_node("svc-test.a_b:0"), "svc-test.a_b")
        self.assertIsNone(owner_node(None))

    def test_both_forms_in_redis(self):
        r = self.redis()
        c = Cluster.__new__(Cluster)   # no nodes: only the Redis readers
        c.redis = r
        self.assertEqual(c.registered(), set())
        r.call("SADD", harness.NODES_KEY, "n1", "n2")
        self.assertEqual(c.registered(), {"n1", "n2"})
        self.assertIsNone(c.incarnation("n1"))
        r.call("DEL", harness.NODES_KEY)
        r.call("HSET", harness.NODES_KEY, "n1", "1a", "n3", "2")
        self.assertEqual(c.registered(), {"n1", "n3"})
        self.assertEqual(c.incarnation("n1"), "1a")
        self.assertIsNone(c.incarnation("n2"))

        self.assertIsNone(c.owner("t", "k"))
        self.assertIsNone(c.owner_token("t", "k"))
        self.assertEqual(c.feed_state("t", "k"), (0, {}, None))
        r.call("SET", feed_key("t", "k", "owner"), "n1")
        self.assertEqual((c.owner("t", "k"), c.owner_token("t", "k")), ("n1", "n1"))
        r.call("SET", feed_key("t", "k", "owner"), "n3:2")
        r.call("SET", feed_key("t", "k", "count"), "1")
        r.call("HSET", feed_key("t", "k", "nodes"), "n3", "1")
        self.assertEqual((c.owner("t", "k"), c.owner_token("t", "k")), ("n3", "n3:2"))
        self.assertEqual(c.feed_state("t", "k"), (1, {"n3": 1}, "n3"))


class ClusterProxyTest(TestCase):
    def test_redis_proxy_cluster(self):
        c = self.cluster({"np": 2}, nodes=2, haproxy=False, redis_proxy=True)
        self.assertEqual(c.registered(), {"n1", "n2"})
        p1, p2 = c.proxy("n1"), c.proxy("n2")
        self.assertIsNot(p1, p2)
        for nid, p in (("n1", p1), ("n2", p2)):
            self.assertIn(p.addr_str, c.node(nid).argv)
            self.assertNotIn(c.redis.addr_str, c.node(nid).argv)
            self.assertGreaterEqual(p.connections, 1)
            self.assertEqual(c.node(nid).stats().get("redis"), "connected")
        self.assertIn("redis proxy of n1", c.describe())

        # a restarted node comes back through the same proxy
        accepted = p2.accepted
        c.restart_node("n2")
        self.assertIs(c.proxy("n2"), p2)
        c.node("n2").wait_stats(lambda s: s.get("redis") == "connected" and p2.accepted > accepted,
                                what="the restarted n2 connected to Redis through its proxy")
        self.assertEqual(c.registered(), {"n1", "n2"})

        # a reset: the node reconnects through the proxy
        accepted = p1.accepted
        self.assertGreaterEqual(p1.reset(), 1)
        c.node("n1").wait_stats(lambda s: s.get("redis") == "connected" and p1.accepted > accepted,
                                what="n1 reconnected to Redis through its proxy")

        # stop() copes with a cut proxy and a paused node: heals, continues,
        # and every node still exits 0 on SIGTERM
        p1.cut()
        c.node("n2").pause()
        with self.assertRaises(OSError):
            c.node("n2").http_get("/stats", timeout=0.5)
        t0 = time.monotonic()
        c.stop()
        self.assertLess(time.monotonic() - t0, 10.0)
        self.assertEqual([n.proc.returncode for n in c.nodes], [0, 0])
        self.assertFalse(any(p._thread.is_alive() for p in (p1, p2)))

    def test_proxy_needs_redis_proxy(self):
        c = self.cluster({"np": 1}, nodes=1, haproxy=False)
        self.assertEqual(c.proxies, {})
        with self.assertRaises(AssertionError):
            c.proxy("n1")
        with self.assertRaises(KeyError):
            c.proxy("n9")
