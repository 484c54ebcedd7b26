"""test_examples.py -- the applications of deploy/examples end to end, against real nodes: csv-split, unique-users, fanout, search."""

import asyncio
import json
import os
import re
import shutil
import socket
import sys

import harness
from harness import TestCase, class_fixture, wait_until

sys.path.insert(0, os.path.join(harness.REPO, "proto", "python"))
import subway  # noqa: E402

EXAMPLES = os.path.join(harness.REPO, "deploy", "examples")
PY_ENV = {"PYTHONPATH": os.path.join(harness.REPO, "proto", "python")}


# The sanitizer pass of make test leaves these to the plain pass (run.py --after-plain).
PLAIN_ONLY = "the example applications"


def example(*parts):
    """argv running the example script deploy/examples/PARTS."""
    return [sys.executable, os.path.join(EXAMPLES, *parts)]


def publish_all(addr, records):
    """Publishes (topic, key, value) records through subway, one after the other (so in order)."""
    async def go():
        async with subway.connect(addr) as c:
            for topic, key, value in records:
                await c.publish(topic, key, value)
    asyncio.run(go())


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ================================================================ csv-split

class CsvSplitTest(TestCase):
    """subway-cli sub --split-by-key DIR, fed by csv-split/abalone.py."""

    @classmethod
    def setUpClass(cls):
        cls.kafka = class_fixture(cls, harness.MockKafka({"abalone": 3, "hostile": 2}))
        cls.n = class_fixture(cls, harness.Node(cls.kafka.bootstrap))

    def split_cli(self, topic, out, *extra):
        cli = self.proc(harness.cli_argv(self.n.addr_str, "-v", "sub", topic, "*", "--split-by-key", out, *extra),
                        name="subway-cli-split")
        cli.wait_log(r"^subscribed %s/\*" % topic)
        return cli

    def test_rows_land_in_their_key_files_flushed(self):
        out = harness.tmp_path("abalone-by-sex")
        header = harness.run(example("csv-split", "abalone.py") + ["--header"], env=PY_ENV).stdout.strip()
        self.assertEqual(header, "sex,length,diameter,height,whole,shucked,viscera,shell,rings")
        cli = self.split_cli("abalone", out, "--header", header)
        pub = harness.run(example("csv-split", "abalone.py") + ["--subway", self.n.addr_str, "--rows", "90"],
                          env=PY_ENV)
        self.assertEqual(pub.returncode, 0, pub.stderr)
        want = {}
        for line in pub.stdout.splitlines():
            key, row = line.split("\t")
            want.setdefault(key, []).append(row)
        self.assertEqual(set(want), {"M", "F", "I"})
        self.assertEqual(sum(len(v) for v in want.values()), 90)
        expect = {k: ("\n".join([header] + rows) + "\n").encode() for k, rows in want.items()}
        # Read while the CLI still runs: each row is flushed as it is written.
        wait_until(lambda: all(os.path.exists(os.path.join(out, k)) and read(os.path.join(out, k)) == v
                               for k, v in expect.items()), 15, "every row in its key's file")
        self.assertTrue(cli.alive())
        self.assertEqual(sorted(os.listdir(out)), ["F", "I", "M"])

    def test_hostile_keys_stay_inside_dir(self):
        base = harness.tmp_path("hostile")
        out = os.path.join(base, "out")
        os.makedirs(out)
        cli = self.split_cli("hostile", out)
        long_key = b"k" * 300
        cases = [                               # key -> the file name the documented rule gives
            (b"../escape", "%2E.%2Fescape"),
            (b"/etc/passwd", "%2Fetc%2Fpasswd"),
            (b"..", "%2E."),
            (b".", "%2E"),
            (b".hidden", "%2Ehidden"),
            (b"a/b", "a%2Fb"),
            (b"nul\x00byte", "nul%00byte"),
            (b"ctl\x01\n\x7f", "ctl%01%0A%7F"),
            (b"sp ace%41", "sp%20ace%2541"),
            ("café".encode(), "caf%C3%A9"),
            (b"", "%empty"),
            (None, "%nil"),
            (b"plain.csv", "plain.csv"),
            (long_key, None),                   # a prefix, then %% and a hash
        ]
        publish_all(self.n.addr_str, [("hostile", k, b"row of %r" % (k,)) for k, _ in cases])
        names = {name for _, name in cases if name}
        wait_until(lambda: len(os.listdir(out)) == len(cases), 15, "one file per key")
        got = set(os.listdir(out))
        self.assertEqual(got - names, {n for n in got if n.startswith("k" * 180 + "%%")})
        self.assertEqual(len(got - names), 1)
        for key, name in cases:
            if name:
                self.assertEqual(read(os.path.join(out, name)), b"row of %r\n" % (key,), name)
        self.assertEqual(os.listdir(base), ["out"])     # nothing outside DIR
        self.assertTrue(all(len(n) <= 200 for n in got))
        # A symlink planted in DIR is not followed: the CLI stops with the reason.
        os.symlink(os.path.join(base, "target"), os.path.join(out, "trap"))
        publish_all(self.n.addr_str, [("hostile", b"trap", b"x")])
        cli.wait_exit(15)
        self.assertEqual(cli.returncode, 1)
        self.assertIn("--split-by-key %s: trap: " % out, cli.stderr())
        self.assertFalse(os.path.exists(os.path.join(base, "target")))


# ============================================================= unique-users

def collect(addr, topic, n, timeout=20.0):
    """The first n records of topic (every key, from the beginning), as (key, JSON value)."""
    async def go():
        async with subway.connect(addr) as c:
            out = []
            async for r in c.subscribe(topic, "*", start=subway.Start.beginning()):
                out.append((r.key.decode(), json.loads(r.value)))
                if len(out) == n:
                    return out
    return asyncio.run(asyncio.wait_for(go(), timeout))


class UniqueUsersTest(TestCase):
    """unique-users/uniques.py on a deterministic event stream (event
    times, no wall clock): an empty minute, late events within the allowed
    lateness (30 s), one too late."""

    def test_exact_counts_per_minute(self):
        kafka = self.mock_kafka({"uu.events": 1, "uu.counts": 1})
        n = self.node(kafka.bootstrap)
        t0 = 1_800_000_000_000                 # 2027-01-15T08:00Z, a minute's start

        def at(m, s):
            return t0 + m * 60_000 + s * 1000
        events = [("a", at(0, 1)), ("b", at(0, 5)), ("a", at(0, 10)),      # minute 0: a, b
                  ("c", at(1, 1)), ("d", at(1, 2)),                          # minute 1: c, d
                  ("e", at(0, 50)),                 # late for minute 0, within 30 s of lateness: counted
                  ("c", at(1, 30)),                 # c again: distinct users
                  ("f", at(3, 5)),                  # watermark 2:35 closes minutes 0 and 1
                  ("g", at(1, 59)),                 # minute 1 is closed: too late, reported
                  ("h", at(3, 20)),
                  ("x", at(2, 55)),                 # minute 2 still open (watermark 2:50): counted, late
                  ("z", at(6, 0))]                  # watermark 5:30 closes 2, 3 and the empty 4
        publish_all(n.addr_str, [("uu.events", u, json.dumps({"uid": u, "ts": ts})) for u, ts in events])
        app = self.proc(example("unique-users", "uniques.py") + [
            "--subway", n.addr_str, "--topic", "uu.events", "--out-topic", "uu.counts", "--lateness", "30"],
            name="uniques", env=PY_ENV)
        got = collect(n.addr_str, "uu.counts", 6)
        counts = [(v["start_ms"] - t0) // 60_000 for k, v in got if k == "minute"]
        self.assertEqual(counts, [0, 1, 2, 3, 4])
        self.assertEqual([(v["users"], v["late"]) for k, v in got if k == "minute"],
                         [(3, 1), (2, 0), (1, 1), (2, 0), (0, 0)])
        self.assertEqual([k for k, _ in got], ["minute", "minute", "late", "minute", "minute", "minute"])
        late = got[2][1]
        self.assertEqual((late["uid"], late["ts"], late["watermark"]), ("g", at(1, 59), at(2, 35)))
        self.assertEqual([v["minute"] for k, v in got if k == "minute"][:2], ["2027-01-15T08:00Z", "2027-01-15T08:01Z"])
        self.assertTrue(app.alive())


# =================================================================== fanout

class SlowWebSocket:
    """A browser that stops reading: a raw WebSocket with a tiny receive
    buffer that subscribes, reads the answer, and then reads nothing."""

    def __init__(self, port, spec):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(15)
        self.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        data = spec.encode()
        mask = b"\x01\x02\x03\x04"
        self.sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        frame = self.frame()
        assert b'"subscribed"' in frame[1], frame

    def frame(self):
        """(opcode, payload) of the next frame from the server (unmasked)."""
        def need(n):
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed")
                self.buf += chunk
        need(2)
        op, ln, at = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
        if ln == 126:
            need(4)
            ln, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif ln == 127:
            need(10)
            ln, at = int.from_bytes(self.buf[2:10], "big"), 10
        need(at + ln)
        payload, self.buf = self.buf[at:at + ln], self.buf[at + ln:]
        return op, payload

    def close_frame(self):
        """Reads on to the close frame: (code, reason)."""
        while True:
            op, payload = self.frame()
            if op == 0x8:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()


class FanoutTest(TestCase):
    """fanout/gateway.py: two browsers keep getting every record while a
    third stops reading; that one is closed with 1008 "too slow"."""

    RECORDS = 2000

    def test_slow_browser_does_not_stall_the_others(self):
        import aiohttp
        kafka = self.mock_kafka({"fan": 2})
        n = self.node(kafka.bootstrap)
        port = harness.free_port()
        gw = self.proc(example("fanout", "gateway.py") + ["--subway", n.addr_str, "--port", str(port),
                                                          "--max-queue", "50"], name="gateway", env=PY_ENV)
        gw.wait_log("gateway: listening on", stream="stdout")
        slow = SlowWebSocket(port, "fan/k1")
        self.addCleanup(slow.sock.close)
        pad = "x" * 4000            # 8 MB in all: more than the kernel buffers a stalled socket

        async def fast(session, ready):
            ws = await session.ws_connect("http://127.0.0.1:%d/ws" % port)
            await ws.send_str("fan/k1")
            self.assertIn("subscribed", json.loads((await ws.receive()).data))
            ready.set_result(None)
            seqs = []
            while len(seqs) < self.RECORDS:
                msg = await ws.receive()
                self.assertEqual(msg.type, aiohttp.WSMsgType.TEXT, msg)
                seqs.append(json.loads(json.loads(msg.data)["value"])["seq"])
            await ws.close()
            return seqs

        async def go():
            async with aiohttp.ClientSession() as session:
                ready = [asyncio.get_running_loop().create_future() for _ in range(2)]
                readers = [asyncio.ensure_future(fast(session, r)) for r in ready]
                await asyncio.gather(*ready)
                async with subway.connect(n.addr_str) as c:
                    for i in range(0, self.RECORDS, 100):
                        await asyncio.gather(*(c.publish("fan", "k1", json.dumps({"seq": j, "pad": pad}))
                                               for j in range(i, i + 100)))
                return await asyncio.wait_for(asyncio.gather(*readers), 30)

        got = asyncio.run(asyncio.wait_for(go(), 60))
        # Every record, in order, to both readers (one partition: Kafka's order is the publish order per batch).
        for seqs in got:
            self.assertEqual(sorted(seqs), list(range(self.RECORDS)))
            self.assertEqual(seqs, sorted(seqs))
        gw.wait_log(r"gateway: dropping slow client 127\.0\.0\.1:\d+: 50 frames unsent")
        code, reason = slow.close_frame()
        self.assertEqual((code, reason), (1008, "too slow: 50 frames unsent"))
        self.assertTrue(gw.alive())


# =================================================================== search

class Chromium:
    """Headless Chromium driven over the DevTools protocol (a WebSocket):
    open and close tabs, evaluate JavaScript in them."""

    def __init__(self, test):
        exe = shutil.which("chromium")
        if exe is None:
            raise AssertionError("chromium is not installed (deploy/install-deps.sh installs it)")
        self.port = harness.free_port()
        self.proc = test.proc([exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                               "--remote-debugging-port=%d" % self.port,
                               "--user-data-dir=" + harness.tmp_path("chromium-search"), "about:blank"],
                              name="chromium")
        wait_until(lambda: harness.port_open(self.port), 30, "chromium's DevTools port")
        self.loop = asyncio.new_event_loop()
        test.addCleanup(self.loop.close)
        self.ws = self.loop.run_until_complete(self._connect())
        self.next_id = 0

    async def _connect(self):
        import aiohttp
        self.session = aiohttp.ClientSession()
        async with self.session.get("http://127.0.0.1:%d/json/version" % self.port) as r:
            url = (await r.json())["webSocketDebuggerUrl"]
        return await self.session.ws_connect(url, max_msg_size=0)

    def call(self, method, session=None, **params):
        """Sends a DevTools command; returns its result (events in between are skipped)."""
        async def go():
            self.next_id += 1
            msg = {"id": self.next_id, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            await self.ws.send_json(msg)
            while True:
                m = await self.ws.receive_json()
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise AssertionError("%s: %s" % (method, m["error"]))
                    return m["result"]
        return self.loop.run_until_complete(asyncio.wait_for(go(), 20))

    def open(self, url):
        """Opens url in a new tab; returns (target id, session id)."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        return target, self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def eval(self, tab, expr):
        r = self.call("Runtime.evaluate", session=tab[1], expression=expr, returnByValue=True)
        return r["result"].get("value")

    def close_tab(self, tab):
        self.call("Target.closeTarget", targetId=tab[0])

    def stop(self):
        async def go():
            await self.ws.close()
            await self.session.close()
        self.loop.run_until_complete(go())


class SearchTest(TestCase):
    """search/app.py in headless Chromium, on Apache Kafka (which really
    creates and deletes the free topic; the mock creates any topic and
    deletes none), with Redis for the cluster-wide feed count, and the
    demand producer filling the topic while the feed is wanted."""

    TERM = "Tabby Cats"
    TOPIC = "search.tabby-cats"

    def test_tabs_share_the_feed_and_release_it(self):
        from kafka_real import ApacheKafka
        kafka = ApacheKafka(brokers=1)
        self.addCleanup(kafka.stop)
        kafka.create_topic("subway.demand", 1)
        c = self.cluster(kafka=kafka, nodes=1, haproxy=False, node_args=[
            "--free-topic", "search.*", "--free-topic-partitions", "2", "--free-topic-grace-ms", "500",
            "--linger-ms", "200", "--demand-topic", "subway.demand", "--metadata-refresh-ms", "300"])
        node = c.nodes[0].addr_str
        prod = self.proc(example("demand-producer.py") + ["--subway", node, "--topics", "search.*",
                                                          "--interval", "0.1"], name="demand-producer", env=PY_ENV)
        port = harness.free_port()
        app = self.proc(example("search", "app.py") + ["--subway", node, "--port", str(port), "--ping", "0.3"],
                        name="search", env=PY_ENV)
        prod.wait_log("ready", stream="stdout")
        app.wait_log("search: listening on", stream="stdout")
        self.assertNotIn(self.TOPIC, self.topics(kafka))
        count_key = harness.feed_key(self.TOPIC, None, "count")

        def count():
            return c.redis.call("GET", count_key)

        def shown(tab):
            return browser.eval(tab, "[...document.querySelectorAll('#results li')].map(li => li.textContent)") or []

        browser = Chromium(self)
        self.addCleanup(browser.stop)
        url = "http://127.0.0.1:%d/?q=%s" % (port, self.TERM.replace(" ", "+"))
        one = browser.open(url)
        wait_until(lambda: len(shown(one)) >= 3, 30, "results in the first tab")
        self.assertTrue(all(re.fullmatch(r"\w+ tabby-cats [\w ]+ #\d+", t) for t in shown(one)), shown(one))
        self.assertEqual(browser.eval(one, "document.getElementById('status').dataset.topic"), self.TOPIC)
        self.assertIn(self.TOPIC, self.topics(kafka))                 # created on demand
        self.assertEqual(count(), "1")
        two = browser.open(url)
        wait_until(lambda: count() == "2", 10, "count 2 with two tabs")
        wait_until(lambda: len(shown(two)) >= 3, 20, "results in the second tab")
        browser.close_tab(two)
        wait_until(lambda: count() == "1", 10, "count 1 after closing a tab")
        self.assertEqual(prod.stdout().count("producing %s/*" % self.TOPIC), 1)   # one feed for both tabs
        n = len(shown(one))
        wait_until(lambda: len(shown(one)) > n, 10, "the first tab still gets results")
        browser.close_tab(one)
        wait_until(lambda: count() in (None, "0"), 10, "the feed released with the last tab")
        prod.wait_log("stopped %s/*" % self.TOPIC, stream="stdout")
        wait_until(lambda: self.TOPIC not in self.topics(kafka), 20, "the topic deleted after the grace period")

    @staticmethod
    def topics(kafka):
        return [t["topic"] for t in kafka.metadata()["topics"]]
