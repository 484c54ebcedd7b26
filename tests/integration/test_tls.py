"""test_tls.py -- the client port over TLS (--tls-listen): the same protocol and limits inside TLS, bad handshakes refused one by one.

One throwaway PKI per run (harness.make_tls_certs): a CA, a server
certificate for 127.0.0.1, a client certificate, and an unrelated CA. The
shared node takes client certificates optionally, so one node serves
clients with and without them; a second node requires them.
"""

import asyncio
import os
import socket
import ssl
import sys

import harness

from harness import (HAPROXY_BACKEND, HAPROXY_TLS_BACKEND, MockKafka, Node, TestCase, class_fixture, cli_argv,
                     free_port, make_tls_certs, produce, run)
import wire
from wire import DROPPED, MESSAGE

sys.path.insert(0, os.path.join(harness.REPO, "proto", "python"))
import subway  # noqa: E402

_pki = None


def pki():
    global _pki
    if _pki is None:
        _pki = make_tls_certs()
    return _pki


def tls_args(port, verify="optional", extra=()):
    p = pki()
    return ["--tls-listen", "127.0.0.1:%d" % port, "--tls-cert-file", p["cert"], "--tls-key-file", p["key"],
            "--tls-ca-file", p["ca"], "--tls-verify-client", verify] + list(extra)


def client_context(ca="ca", cert=False):
    """An ssl.SSLContext trusting pki()[ca], with the client certificate
    when cert is true."""
    p = pki()
    ctx = ssl.create_default_context(cafile=p[ca])
    if cert:
        ctx.load_cert_chain(p["client_cert"], p["client_key"])
    return ctx


class TlsNode(Node):
    """A Node with --tls-listen on a free port (.tls_addr)."""

    def __init__(self, bootstrap, args=(), verify="optional", **kw):
        self.tls_port = free_port()
        self.tls_addr = ("127.0.0.1", self.tls_port)
        super().__init__(bootstrap, tls_args(self.tls_port, verify) + list(args), **kw)

    def tls_client(self, hello=True, cert=False, **kw):
        c = wire.RawClient(self.tls_addr, ssl=client_context(cert=cert), **kw)
        if hello:
            c.hello()
        return c


class TlsTest(TestCase):
    TOPICS = {"tls": 2, "fan": 1, "tlspub": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = class_fixture(cls, MockKafka(cls.TOPICS))
        cls.n = class_fixture(cls, TlsNode(cls.kafka.bootstrap, ["--hello-timeout-ms", "600"]))

    def tls_client(self, **kw):
        c = self.n.tls_client(**kw)
        self.addCleanup(c.close)
        return c

    def counters(self):
        return self.n.stats()["counters"]

    def test_subscribe_and_publish_over_tls(self):
        c = self.tls_client()
        self.assertEqual(c.welcome.version, wire.PROTO_VERSION)
        sub = c.subscribe("tls", "k1")
        produce(self.kafka.bootstrap, "tls", [("k1", "over tls")])
        self.assertEqual(c.messages(1, feed=sub.feed)[0].value, b"over tls")
        ack = c.publish("tls", b"k1", b"published over tls")
        self.assertEqual(ack.type, wire.PUBACK)
        self.assertEqual(c.messages(1, feed=sub.feed)[0].value, b"published over tls")
        self.assertIn("TLSv1.", c.sock.version())

    def test_client_certificate_when_optional(self):
        c = self.tls_client(cert=True)
        c.subscribe("tls", "k2")

    def test_fanout_to_tls_and_plain_subscribers_is_identical(self):
        """The same shared blocks go to TLS subscribers (encrypted slice by
        slice) and a plain one (writev): every subscriber gets every record,
        byte for byte and in order."""
        subs = [self.tls_client() for _ in range(4)]
        plain = self.n.client()
        self.addCleanup(plain.close)
        feeds = [c.subscribe("fan", "*").feed for c in subs + [plain]]
        self.assertEqual(len(set(feeds)), 1)
        n = 3000
        produce(self.kafka.bootstrap, "fan", [("k%d" % (i % 7), "v%05d-" % i + "x" * (i % 300)) for i in range(n)])
        want = None
        for c in subs + [plain]:
            got = [(m.offset, m.key, m.value) for m in c.messages(n, timeout=30, feed=feeds[0])]
            if want is None:
                want = got
                self.assertEqual([v[:6] for _, _, v in got], [b"v%05d" % i for i in range(n)])
            self.assertEqual(got, want)
        for c in subs + [plain]:
            self.assertEqual([f for f in c.collect(0.05) if f.type == DROPPED], [])

    def test_plain_bytes_to_the_tls_port_close_only_that_connection(self):
        good = self.tls_client()
        gsub = good.subscribe("tls", "k3")
        before = self.counters()["tls_handshake_failed"]
        s = socket.create_connection(self.n.tls_addr, timeout=5)
        self.addCleanup(s.close)
        s.sendall(wire.encode(wire.HELLO, wire.PROTO_VERSION, "plain", None))
        data = b""
        try:
            while True:  # the node's alert, if any, then EOF (or RST: it left our bytes unread)
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        self.assertNotIn(b"WELCOME", data)
        self.n.wait_stats(lambda st: st["counters"]["tls_handshake_failed"] == before + 1, timeout=5,
                          what="the failed handshake counted")
        produce(self.kafka.bootstrap, "tls", [("k3", "still served")])
        self.assertEqual(good.messages(1, feed=gsub.feed)[0].value, b"still served")

    def test_wrong_ca_is_refused_by_the_client_and_counted(self):
        before = self.counters()["tls_handshake_failed"]
        with self.assertRaises(ssl.SSLCertVerificationError):
            wire.RawClient(self.n.tls_addr, ssl=client_context(ca="other_ca"))
        self.n.wait_stats(lambda st: st["counters"]["tls_handshake_failed"] == before + 1, timeout=5,
                          what="the client's unknown-CA alert counted")

    def test_unfinished_handshake_meets_the_hello_timeout(self):
        """A client that connects and never finishes the handshake is closed
        at --hello-timeout-ms (600 ms here), like one that never sends HELLO."""
        before = self.counters()
        s = socket.create_connection(self.n.tls_addr, timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
        s.settimeout(5)
        self.assertEqual(s.recv(4096), b"")     # closed (no ERROR can be said before TLS is up)
        after = self.counters()
        self.assertEqual(after["hello_closed"], before["hello_closed"] + 1)
        self.assertEqual(after["tls_handshake_failed"], before["tls_handshake_failed"])

    def test_input_openssl_holds_is_read(self):
        """PINGs filling one TLS record (16 KiB) in one write, on a fresh
        connection: the node's first reads take 512 bytes, then more, four
        reads a turn, so OpenSSL is left holding decrypted bytes the socket
        will not announce again. Every PING is answered, with nothing more
        sent."""
        c = self.tls_client()
        base = 1 << 40                # 15-byte frames: fewer than the 1024 a turn handles
        n = 1000
        c.send_raw(b"".join(wire.encode(wire.PING, base + i) for i in range(n)))
        tokens = []
        while len(tokens) < n:
            f = c.expect(wire.PONG, timeout=5)
            tokens.append(f.token)
        self.assertEqual(tokens, list(range(base, base + n)))

    def test_protocol_errors_inside_tls_are_coded(self):
        c = self.tls_client(hello=False)
        c.send(wire.PING, 1)
        e = c.expect_error(timeout=5)
        self.assertEqual(e.code, wire.E_HELLO_REQUIRED, e)
        c.expect_closed(timeout=5)

    def test_stats_and_metrics_count_handshakes(self):
        self.tls_client()
        st = self.counters()
        self.assertGreaterEqual(st["tls_handshakes"], 1)
        status, text = self.n.http_get("/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(text, r"(?m)^subway_tls_handshakes_total [1-9]")
        self.assertRegex(text, r"(?m)^subway_tls_handshake_failures_total \d+$")


    # ---- the clients

    def cli(self, *args, env=None, addr=None):
        return run(cli_argv(addr or "localhost:%d" % self.n.tls_port, *args), timeout=20, env=env)

    def test_cli_over_tls(self):
        """subway-cli --ca checks the node against that CA and the host of
        -s; the same command that speaks plain TCP otherwise."""
        p = pki()
        r = self.cli("--ca", p["ca"], "pub", "tlspub", "cli-k", "from cli")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cli("--ca", p["ca"], "-o", "beginning", "-c", "1", "sub", "tlspub", "cli-k")
        self.assertEqual((r.returncode, r.stdout), (0, "cli-k\tfrom cli\n"), r.stderr)
        # SUBWAY_TLS=1 with the system's CAs: ours is not one of them
        r = self.cli("pub", "tlspub", "cli-k", "x", env={"SUBWAY_TLS": "1"})
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("certificate", r.stderr)
        # a name the certificate does not carry
        r = self.cli("--ca", p["ca"], "--server-name", "elsewhere.example", "pub", "tlspub", "cli-k", "x")
        self.assertEqual(r.returncode, 3)
        self.assertIn("hostname mismatch", r.stderr)
        # TLS to the plain port
        r = self.cli("--ca", p["ca"], "pub", "tlspub", "cli-k", "x", addr=self.n.addr_str)
        self.assertEqual(r.returncode, 3)
        self.assertIn("TLS handshake", r.stderr)

    def test_python_client_over_tls(self):
        async def main():
            async with subway.connect("127.0.0.1:%d" % self.n.tls_port, ssl=client_context(), timeout=10) as c:
                sub = c.subscribe("tlspub", "py-k")
                await sub.wait_live()
                ack = await c.publish("tlspub", "py-k", "from python")
                async for r in sub:
                    return ack, r
        ack, r = asyncio.run(asyncio.wait_for(main(), 20))
        self.assertEqual((r.value, r.partition, r.offset), (b"from python", ack.partition, ack.offset))


class TlsClientCertRequiredTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = class_fixture(cls, MockKafka({"req": 1}))
        cls.n = class_fixture(cls, TlsNode(cls.kafka.bootstrap, verify="required"))

    def test_without_a_client_certificate_refused(self):
        before = self.n.stats()["counters"]["tls_handshake_failed"]
        # TLS 1.3: the client may finish its side before the node says no,
        # so the refusal shows at the handshake or at the first read
        with self.assertRaises((ssl.SSLError, wire.ConnectionClosed, ConnectionResetError)):
            c = wire.RawClient(self.n.tls_addr, ssl=client_context())
            self.addCleanup(c.close)
            c.hello(timeout=5)
        self.n.wait_stats(lambda st: st["counters"]["tls_handshake_failed"] == before + 1, timeout=5,
                          what="the missing certificate counted")

    def test_cli_with_a_client_certificate(self):
        p = pki()
        argv = cli_argv("127.0.0.1:%d" % self.n.tls_port, "--ca", p["ca"], "pub", "req", "c", "cli cert")
        r = run(argv, timeout=20)
        self.assertEqual(r.returncode, 3, "refused without --cert")
        r = run(argv[:3] + ["--cert", p["client_cert"], "--key", p["client_key"]] + argv[3:], timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_with_a_client_certificate_served(self):
        c = self.n.tls_client(cert=True)
        self.addCleanup(c.close)
        sub = c.subscribe("req", "*")
        produce(self.kafka.bootstrap, "req", [("a", "with cert")])
        self.assertEqual(c.messages(1, feed=sub.feed)[0].value, b"with cert")


class TlsSlowConsumerTest(TestCase):
    """A TLS subscriber that stops reading is dropped and then closed with
    SLOW_CONSUMER exactly as a plain one is: its ERROR goes out right after
    the frame being written, even when a TLS record of it was half sent."""

    def test_never_reading_tls_client_is_closed_with_slow_consumer(self):
        kafka = self.mock_kafka({"bulk": 1})
        node = self.node(kafka.bootstrap, tls_args(free_port()) + [
            "--out-soft-limit", "262144", "--out-hard-limit", str(1 << 30), "--slow-timeout-ms", "400",
            "--heartbeat-timeout-ms", "600000"])
        # the TLS port is in the argv the node got
        tls_port = int(node.argv[node.argv.index("--tls-listen") + 1].rsplit(":", 1)[1])
        fast = self.client(node)
        slow = wire.RawClient(("127.0.0.1", tls_port), ssl=client_context(), rcvbuf=4096)
        self.addCleanup(slow.close)
        slow.hello()
        fs = fast.subscribe("bulk", "*")
        slow.subscribe("bulk", "*")
        big = "y" * 50000
        for b in range(20):       # up to 8 MB: more than loopback's socket buffers hold
            produce(kafka.bootstrap, "bulk", [("k", "%03d" % b + big) for _ in range(8)])
            fast.messages(8, timeout=20, feed=fs.feed)
            if node.stats()["counters"]["slow_closed"]:
                break
        node.wait_stats(lambda st: st["counters"]["slow_closed"] == 1, timeout=8, what="the TLS client closed as slow")
        # reading again now (the node waits 2 s for a closing ERROR to
        # flush), it gets the rest of the frame that was being written, then
        # the ERROR: the record OpenSSL had half sent was kept for it
        frames = slow.expect_closed(timeout=10)
        errors = [f for f in frames if f.type == wire.ERROR]
        self.assertTrue(errors, "no ERROR before the close")
        self.assertEqual(errors[-1].code, wire.E_SLOW_CONSUMER, errors[-1])
        self.assertEqual(frames[-1].type, wire.ERROR)
        node.wait_stats(lambda st: st["connections"] == 1, timeout=5, what="the plain client kept")
        self.assertTrue(all(f.type in (MESSAGE, DROPPED, wire.ERROR, wire.PING) for f in frames))


class HAProxyTlsTest(TestCase):
    """deploy/haproxy.cfg's "#tls" sections, live: TLS terminated in HAProxy
    (plain to the node's --listen) and passed through to --tls-listen."""

    def test_terminated_and_passthrough(self):
        kafka = self.mock_kafka({"lbtls": 1})
        node = TlsNode(kafka.bootstrap, ["--node-id", "tls1"])
        self.addCleanup(node.stop)
        lb = self.haproxy([("tls1", node.port, node.admin_port)], tls_crt=pki()["pem"],
                          tls_servers=[("tls1", node.tls_port, node.admin_port)])
        lb.proc.wait_ready(lambda: all(lb.stats_rows()[(b, "tls1")]["status"] == "UP"
                                       for b in (HAPROXY_BACKEND, HAPROXY_TLS_BACKEND)), 15,
                           "both backends' server UP")
        before = node.stats()["counters"]["tls_handshakes"]
        terminated = wire.RawClient(lb.tls_addr, ssl=client_context())
        self.addCleanup(terminated.close)
        passthrough = wire.RawClient(lb.passthrough_addr, ssl=client_context(cert=True))
        self.addCleanup(passthrough.close)
        feeds = []
        for c in (terminated, passthrough):
            c.hello()
            self.assertEqual(c.welcome.node_id, "tls1")
            feeds.append(c.subscribe("lbtls", "*").feed)
        # only the passthrough client did a handshake with the node
        self.assertEqual(node.stats()["counters"]["tls_handshakes"], before + 1)
        produce(kafka.bootstrap, "lbtls", [("k", "through haproxy, encrypted")])
        for c, f in zip((terminated, passthrough), feeds):
            self.assertEqual(c.messages(1, feed=f)[0].value, b"through haproxy, encrypted")


class TlsRefusalAndKtlsTest(TestCase):
    def test_refused_connection_hears_why_over_tls_and_ktls_is_optional(self):
        """Over --max-conns, a TLS client still gets its TOO_MANY_CONNS:
        the handshake runs for the refusal. --tls-ktls logs whether the
        kernel took the keys; this machine has no tls module, and the node
        works either way."""
        kafka = self.mock_kafka({"k": 1})
        node = TlsNode(kafka.bootstrap, ["--max-conns", "1", "--tls-ktls"])
        self.addCleanup(node.stop)
        first = node.tls_client()
        self.addCleanup(first.close)
        node.proc.wait_log(r"TLS: kernel TLS (took|did not take)")
        second = wire.RawClient(node.tls_addr, ssl=client_context())
        self.addCleanup(second.close)
        second.send(wire.HELLO, wire.PROTO_VERSION, "second", None)
        e = second.expect_error(timeout=5)
        self.assertEqual(e.code, wire.E_TOO_MANY_CONNS, e)
        second.expect_closed(timeout=5)
        sub = first.subscribe("k", "*")
        produce(kafka.bootstrap, "k", [("a", "ktls or not")])
        self.assertEqual(first.messages(1, feed=sub.feed)[0].value, b"ktls or not")
