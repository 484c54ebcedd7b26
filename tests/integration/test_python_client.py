"""test_python_client.py -- the Python client (proto/python) against real nodes: subscribe, publish, start modes, LIVE, DROPPED, errors, resume through HAProxy.

The package is imported from the work tree (proto/python on sys.path), not
from an installed copy, so these tests always test the code beside them.
"""

import asyncio
import os
import sys

import harness
from harness import NodeCase, TestCase, consume, java_partition

sys.path.insert(0, os.path.join(harness.REPO, "proto", "python"))
import subway  # noqa: E402
from subway import ErrorCode, Start  # noqa: E402

TIMEOUT = 20


# The sanitizer pass of make test leaves these to the plain pass (run.py --after-plain).
PLAIN_ONLY = 'the Python client'


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


async def take(sub, n):
    """The next n items of sub."""
    out = []
    async for item in sub:
        out.append(item)
        if len(out) == n:
            break
    return out


class PythonClientTest(NodeCase):
    TOPICS = {"py": 3, "pystart": 2, "pyerr": 1, "pygone": 2}
    NODE_ARGS = ("--linger-ms", "200")

    def test_publish_then_subscribe_live(self):
        """A keyed subscription gets what the client publishes, with the
        partition and offset its PUBACK named, and headers from Kafka."""
        async def main():
            async with subway.connect(self.n.addr_str, client_name="py-test") as c:
                self.assertEqual((c.version, c.node_id), (3, self.n.stats()["node_id"]))
                sub = c.subscribe("py", "alice")
                await sub.wait_live()
                self.assertEqual(sub.partitions, [java_partition("alice", 3)])
                acks = [await c.publish("py", "alice", "v%d" % i) for i in range(3)]
                await c.publish("py", "bob", b"not for alice")
                recs = await take(sub, 3)
                self.assertEqual([r.value for r in recs], [b"v0", b"v1", b"v2"])
                self.assertEqual([(r.partition, r.offset) for r in recs], [tuple(a) for a in acks])
                r = recs[0]
                self.assertEqual((r.topic, r.key, r.headers), ("py", b"alice", []))
                self.assertGreater(r.timestamp, 1500000000000)
                self.assertEqual(sub.positions, {acks[2].partition: acks[2].offset + 1})
                await sub.unsubscribe()
                with self.assertRaises(StopAsyncIteration):
                    await sub.__anext__()
        run(main())
        self.n.wait_stats(lambda s: s["subscriptions"] == 0, what="the subscription released")
        # headers as Kafka has them, and every key with "*"
        async def every_key():
            async with subway.connect(self.n.addr_str) as c:
                sub = c.subscribe("py", "*", Start.beginning())
                self.produce("py", [("carol", "h")], extra=["-H", "trace=abc", "-H", "n=1"])
                async for r in sub:
                    if r.key == b"carol":
                        return r
        r = run(every_key())
        self.assertEqual(r.headers, [("trace", b"abc"), ("n", b"1")])

    def test_start_modes(self):
        """Every start helper against what Kafka holds; LIVE's positions
        follow; live_marker puts LIVE in the stream."""
        self.produce("pystart", [("k", "r%d" % i) for i in range(6)])
        part = java_partition("k", 2)

        async def values(start, n):
            async with subway.connect(self.n.addr_str) as c:
                sub = c.subscribe("pystart", "k", start, live_marker=True)
                items = await take(sub, n + 1)
                self.assertIsInstance(items[-1], subway.Live, items)
                self.assertEqual(items[-1].positions, {part: 6})
                return [r.value.decode() for r in items[:-1]]

        async def main():
            self.assertEqual(await values(Start.beginning(), 6), ["r%d" % i for i in range(6)])
            self.assertEqual(await values(Start.last(2), 2), ["r4", "r5"])
            self.assertEqual(await values(Start.offset(3), 3), ["r3", "r4", "r5"])
            self.assertEqual(await values(Start.positions({part: 5}), 1), ["r5"])
            # The mock Kafka answers offsets-for-times with the log end
            # (test_catchup_adversarial's odd starts assert no more either).
            self.assertEqual(await values(Start.timestamp(2 ** 62), 0), [])
        run(main())

    def test_refusals_carry_the_code(self):
        async def main():
            async with subway.connect(self.n.addr_str) as c:
                with self.assertRaises(subway.ServerError) as cm:
                    await c.subscribe("no-such-topic", "k").ready()
                self.assertEqual((cm.exception.code, cm.exception.name), (ErrorCode.UNKNOWN_TOPIC, "UNKNOWN_TOPIC"))
                with self.assertRaises(subway.ServerError) as cm:
                    await c.publish("bad topic", "k", "v")
                self.assertEqual(cm.exception.code, ErrorCode.INVALID_ARG)
                ok = c.subscribe("pyerr", "x")
                await ok.ready()
                with self.assertRaises(subway.ServerError) as cm:
                    async for _ in c.subscribe("pyerr", b"x"):
                        pass
                self.assertEqual(cm.exception.code, ErrorCode.ALREADY_SUBSCRIBED)
                with self.assertRaises(subway.SubwayError) as cm:
                    await c.publish("pyerr", "k", "v", headers=[("h", b"v")])
                self.assertEqual(cm.exception.code, ErrorCode.UNSUPPORTED)
                # the connection survived every refusal
                self.assertEqual(len(await c.publish("pyerr", "x", "still fine")), 2)
            with self.assertRaises(subway.ConnectionLost) as cm:
                await subway.connect("127.0.0.1:%d" % harness.free_port(), timeout=5)
            self.assertEqual(cm.exception.code, ErrorCode.IO)
        run(main())

    def test_max_frame_is_enforced_on_receive(self):
        async def main():
            async with subway.connect(self.n.addr_str, max_frame=200, reconnect=False) as c:
                sub = c.subscribe("pyerr", "big")
                await sub.wait_live()
                self.produce("pyerr", [("big", "x" * 1000)])
                with self.assertRaises(subway.ProtocolError) as cm:
                    await sub.__anext__()
                self.assertEqual(cm.exception.code, ErrorCode.FRAME_TOO_LARGE)
                self.assertRegex(cm.exception.text, r"^frame of \d+ bytes exceeds the 200-byte limit$")
                self.assertTrue(c.closed)
        run(main())

    def test_dropped_marker_and_callback(self):
        """Records Kafka no longer holds (the mock keeps 5 MB a partition):
        a Dropped item in the stream by default, the callback instead when
        one is given; either way the count is exact."""
        self.produce("pygone", [(None, "%05d-%s" % (i, "y" * 2000)) for i in range(3000)], partition=0)
        first = consume(self.bootstrap, "pygone", partition=0, count=1)[0]["offset"]
        self.assertGreater(first, 10)

        async def main():
            async with subway.connect(self.n.addr_str) as c:
                sub = c.subscribe("pygone", None, Start.positions({0: 10}))
                items = await take(sub, 2)
                self.assertEqual(items[0], subway.Dropped("pygone", None, first - 10))
                self.assertEqual((items[1].partition, items[1].offset), (0, first))
            seen = []
            async with subway.connect(self.n.addr_str, on_dropped=lambda s, n: seen.append((s, n))) as c:
                sub2 = c.subscribe("pygone", "*", Start.positions({0: 10}))
                rec = await sub2.__anext__()
                self.assertEqual((rec.offset, seen), (first, [(sub2, first - 10)]))
        run(main())

    def test_blocking_client(self):
        with subway.Client(self.n.addr_str) as c:
            ack = c.publish("py", "dave", "one")
            sub = c.subscribe("py", "dave", start=Start.offset(ack.offset))
            got = next(iter(sub))
            self.assertEqual((got.value, got.offset, sub.partitions), (b"one", ack.offset, [ack.partition]))
            self.assertEqual(sub.wait_live(), {ack.partition: ack.offset + 1})
            c.publish("py", "dave", "two")
            self.assertEqual(next(sub).value, b"two")
            sub.unsubscribe()
            self.assertEqual(list(sub), [])
        with self.assertRaises(subway.ServerError) as cm:
            with subway.Client(self.n.addr_str) as c:
                c.subscribe("py", "*").ready()
                c.subscribe("py", None).ready()
        self.assertEqual(cm.exception.code, ErrorCode.ALREADY_SUBSCRIBED)


class PythonClientHeartbeatTest(NodeCase):
    TOPICS = {"pyhb": 1}
    NODE_ARGS = ("--heartbeat-ms", "100", "--heartbeat-timeout-ms", "300")

    def test_pings_are_answered(self):
        """Idle for many heartbeat timeouts, the client stays connected:
        it answers every PING by itself."""
        async def main():
            async with subway.connect(self.n.addr_str, reconnect=False) as c:
                self.assertEqual(c.heartbeat_ms, 100)
                sub = c.subscribe("pyhb", "k")
                await sub.wait_live()
                before = self.n.stats()["counters"]["heartbeat_closed"]
                # idle for three heartbeat timeouts (what is tested, not a
                # wait for an event), then a record still arrives
                await asyncio.sleep(1.0)
                await c.publish("pyhb", "k", "alive")
                self.assertEqual((await sub.__anext__()).value, b"alive")
                self.assertFalse(c.closed)
                self.assertEqual(self.n.stats()["counters"]["heartbeat_closed"], before)
        run(main())


class PythonClientResumeTest(TestCase):
    def test_resume_across_a_node_kill_and_a_drain(self):
        """Through HAProxy: the node holding the client is killed, then the
        next one drains (GOAWAY). The client reconnects by itself, resumes
        from its positions and gets every record once, in order."""
        cl = self.cluster({"pyres": 2}, nodes=2, node_args=["--lease-ms", "1000", "--node-ttl-ms", "1000",
                                                             "--reap-interval-ms", "250", "--drain-timeout-ms", "500"])
        events = []

        def restart(node):
            node.start()
            cl.wait_registered(node.node_id)
            cl.haproxy.wait_servers([node.node_id])

        async def main():
            loop = asyncio.get_running_loop()
            async with subway.connect(cl.haproxy.addr_str, reconnect_base=0.05, reconnect_max=0.5,
                                      on_reconnect=lambda ev, err, d: events.append((ev, err and err.name))) as c:
                sub = c.subscribe("pyres", "k")
                await sub.wait_live()
                got = []
                n = 0
                for phase in ("kill", "drain", "end"):
                    for _ in range(20):
                        await c.publish("pyres", "k", "v%d" % n)
                        n += 1
                    while len(got) < n:
                        got.append((await sub.__anext__()).value.decode())
                    node = cl.node(c.node_id)
                    if phase == "kill":
                        node.kill9()
                        killed = node
                    elif phase == "drain":
                        await loop.run_in_executor(None, node.stop)
                    if phase != "end":
                        before = c.reconnects
                        while c.reconnects == before:
                            await asyncio.sleep(0.02)   # polls the condition
                    if phase == "kill":
                        # back, so that the drain leaves a node to go to
                        await loop.run_in_executor(None, restart, killed)
                self.assertEqual(got, ["v%d" % i for i in range(n)])
                self.assertEqual(c.reconnects, 2)
        run(main())
        self.assertIn(("lost", "GOAWAY"), events)
        self.assertEqual([e for e in events if e[0] == "connected"], [("connected", None)] * 2)
