"""test_auth.py -- tokens: who may connect, subscribe and publish; refresh and expiry; keys of every kind; the CLI.

Tokens are minted with deploy/subway-token, the script operators use, and
keys made with the openssl command, so what is tested is what is shipped.
"""

import asyncio
import base64
import json
import os
import subprocess
import sys
import time

from harness import NodeCase, Node, REPO, bin_path, run, tmp_path, wait_until
import wire

MINT = os.path.join(REPO, "deploy", "subway-token")
sys.path.insert(0, os.path.join(REPO, "proto", "python"))
import subway  # noqa: E402


def write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)
    return path


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Keys:
    """Two HMAC secrets (rotation), an RSA and an EC key pair, in the run's temp dir."""

    def __init__(self):
        self.hmac = write(tmp_path("hmac-1"), base64.b64encode(os.urandom(48)).decode() + "\n")
        self.hmac2 = write(tmp_path("hmac-2"), base64.b64encode(os.urandom(48)).decode() + "\n")
        self.rsa = tmp_path("rsa.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa)
        self.rsa_pub = tmp_path("rsa.pub")
        openssl("pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub)
        self.ec = tmp_path("ec.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec)
        self.ec_pub = tmp_path("ec.pub")
        openssl("pkey", "-in", self.ec, "-pubout", "-out", self.ec_pub)

    def node_args(self):
        return ("--auth-hmac-key-file", self.hmac, "--auth-hmac-key-file", self.hmac2,
                "--auth-public-key-file", self.rsa_pub, "--auth-public-key-file", self.ec_pub)

    def mint(self, sub="svc", subscribe=(), publish=(), ttl=3600, key=None, alg=None, nbf=None, claims=None):
        argv = [MINT, "--sub", sub, "--ttl", str(ttl)]
        key = key or self.hmac
        argv += ["--private-key-file", key] if key in (self.rsa, self.ec) else ["--hmac-key-file", key]
        if alg:
            argv += ["--alg", alg]
        for p in subscribe:
            argv += ["--subscribe", p]
        for p in publish:
            argv += ["--publish", p]
        if nbf is not None:
            argv += ["--nbf", str(nbf)]
        if claims is not None:
            argv += ["--claims", json.dumps(claims)]
        r = run(argv, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class AuthRequiredTest(NodeCase):
    TOPICS = {"orders": 3, "search.a": 1, "secret": 1}

    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()
        cls.NODE_ARGS = ("--auth", "required", "--linger-ms", "200") + cls.keys.node_args()
        super().setUpClass()

    def connect(self, token, **kw):
        return self.client(self.n, token=token, **kw)

    def refused(self, token, version=3):
        c = self.client(self.n, hello=False, token=token, version=version)
        with self.assertRaises(wire.ServerError) as cm:
            c.hello()
        self.assertEqual(cm.exception.code, wire.E_UNAUTHORIZED, cm.exception.frame)
        c.expect_closed(5)
        return cm.exception.frame.text

    def test_no_token_is_unauthorized(self):
        self.assertIn("needs a token", self.refused(None))
        self.assertIn("needs a token", self.refused(None, version=2))   # older clients cannot show one

    def test_bad_tokens_are_unauthorized(self):
        good = self.keys.mint(subscribe=["orders/*"])
        h, p, s = good.split(".")
        cases = {
            "garbage": ("not-a-jwt", "not a JWT"),
            "signed with a key the node lacks": (
                self.keys.mint(key=write(tmp_path("stranger-key"), base64.b64encode(os.urandom(48)).decode())),
                "does not verify"),
            "payload changed": (h + "." + b64({"sub": "root", "subway": {"subscribe": ["*/*"]}}) + "." + s,
                                "does not verify"),
            "alg none": (b64({"alg": "none"}) + "." + p + ".", "HS256, RS256 or ES256"),
            "expired": (self.keys.mint(ttl=-10), "expired"),
            "not yet valid": (self.keys.mint(nbf=600), "not valid for"),
            "no sub": (self.keys.mint(claims={"sub": ""}), "sub"),
            "bad patterns": (self.keys.mint(claims={"subway": {"subscribe": "orders/*"}}), "list"),
        }
        # An HS256 token "signed" with the RSA public key's text as its
        # secret must not verify: the key decides the algorithm, not the token.
        with open(self.keys.rsa_pub, "rb") as f:
            confusion = self.keys.mint(key=write(tmp_path("pub-as-secret"), f.read(), "wb"), alg="HS256")
        cases["public key as HMAC secret"] = (confusion, "does not verify")
        for name, (token, why) in cases.items():
            with self.subTest(case=name):
                self.assertIn(why, self.refused(token))
        before = self.n.stats()["counters"]["auth_refused"]
        self.assertGreaterEqual(before, len(cases))

    def test_every_key_kind_and_rotation(self):
        for key in (self.keys.hmac, self.keys.hmac2, self.keys.rsa, self.keys.ec):
            with self.subTest(key=os.path.basename(key)):
                t = self.keys.mint(sub="k-" + os.path.basename(key), subscribe=["orders/*"], key=key)
                c = self.connect(t)
                self.assertEqual(c.welcome.version, 3)
                self.assertEqual(c.welcome.client, "k-" + os.path.basename(key))
                c.subscribe("orders", "x")

    def test_welcome_announces_limits_and_expiry(self):
        t = self.keys.mint(sub="dash-7", ttl=600)
        c = self.connect(t)
        w = c.welcome
        self.assertEqual((w.heartbeat_timeout_ms, w.max_key, w.max_subs, w.client), (15000, 1024, 1024, "dash-7"))
        self.assertAlmostEqual(w.expires_ms / 1000, time.time() + 600, delta=30)

    def test_permissions_per_subscription_and_publish(self):
        c = self.connect(self.keys.mint(sub="narrow", subscribe=["orders/cust-4?", "search.*/*"],
                                        publish=["orders/cust-42"]))
        c.subscribe("orders", "cust-42")
        c.subscribe("search.a", "*")                      # every key: the key pattern is *
        for topic, key in (("orders", "cust-5"), ("orders", "*"), ("secret", "x"), ("orders", "cust-420")):
            with self.subTest(topic=topic, key=key):
                with self.assertRaises(wire.ServerError) as cm:
                    c.subscribe(topic, key)
                self.assertEqual(cm.exception.code, wire.E_FORBIDDEN)
                self.assertIn("narrow may not subscribe to", cm.exception.frame.text)
        self.assertEqual(c.publish("orders", b"cust-42", b"ok").type, wire.PUBACK)
        with self.assertRaises(wire.ServerError) as cm:
            c.publish("orders", b"cust-43", b"no")
        self.assertEqual(cm.exception.code, wire.E_FORBIDDEN)
        self.assertEqual(c.ping(5).token, 5)               # the connection stays
        self.assertGreaterEqual(self.n.stats()["counters"]["forbidden"], 5)
        # A NUL does not cut the name in the refusal into one that looks allowed.
        with self.assertRaises(wire.ServerError) as cm:
            c.subscribe("orders\x00", "cust-42")
        self.assertIn("subscribe to orders?/cust-42", cm.exception.frame.text)

    def test_different_tokens_share_one_feed(self):
        a = self.connect(self.keys.mint(sub="alice", subscribe=["orders/*"]))
        b = self.connect(self.keys.mint(sub="bob", subscribe=["orders/shared"]))
        sa, sb = a.subscribe("orders", "shared"), b.subscribe("orders", "shared")
        feed = self.n.feed("orders", "shared")
        self.assertEqual(feed["subscribers"], 2)
        self.produce("orders", [("shared", "one")])
        self.assertEqual(a.messages(1, feed=sa.feed)[0].value, b"one")
        self.assertEqual(b.messages(1, feed=sb.feed)[0].value, b"one")
        st, body = self.n.http_get("/feeds/orders/shared")
        self.assertEqual(st, 200)
        clients = sorted(x["client"] for x in json.loads(body)["clients"])
        self.assertEqual(clients, ["alice", "bob"])
        names = self.n.stats()["clients"]
        self.assertGreaterEqual(names.get("alice", 0), 1)
        self.assertGreaterEqual(names.get("bob", 0), 1)

    def test_refresh_extends_and_checks(self):
        c = self.connect(self.keys.mint(sub="ref", subscribe=["orders/*"], ttl=60))
        c.subscribe("orders", "r1")
        r = c.auth(self.keys.mint(sub="ref", subscribe=["orders/*"], ttl=3600))
        self.assertAlmostEqual(r.expires_ms / 1000, time.time() + 3600, delta=30)
        # Another client's token, or one that drops a held subscription: refused, the old one stays.
        for token, why in ((self.keys.mint(sub="other", subscribe=["orders/*"]), "not ref"),
                           (self.keys.mint(sub="ref", subscribe=["search.*/*"]), "orders/r1")):
            with self.assertRaises(wire.ServerError) as cm:
                c.auth(token)
            self.assertEqual(cm.exception.code, wire.E_FORBIDDEN)
            self.assertIn(why, cm.exception.frame.text)
        self.assertEqual(c.ping(6).token, 6)
        c.subscribe("orders", "r2")                        # still allowed by the kept token
        # A bad token in AUTH is UNAUTHORIZED and closes.
        with self.assertRaises(wire.ServerError) as cm:
            c.auth("bad.token.here")
        self.assertEqual(cm.exception.code, wire.E_UNAUTHORIZED)
        c.expect_closed(5)

    def test_expired_token_closes_the_connection(self):
        c = self.connect(self.keys.mint(sub="short", subscribe=["orders/*"], ttl=2))
        c.subscribe("orders", "exp")
        e = c.expect_error(timeout=10)
        self.assertEqual(e.code, wire.E_UNAUTHORIZED)
        self.assertIn("expired", e.text)
        c.expect_closed(5)
        wait_until(lambda: self.n.feed("orders", "exp") is None or
                   self.n.feed("orders", "exp")["subscribers"] == 0, timeout=5, what="its subscription released")

    def test_python_client_shows_and_refreshes_a_token(self):
        async def main():
            t = self.keys.mint(sub="py", subscribe=["orders/*"], publish=["orders/*"], ttl=60)
            async with subway.connect(self.n.addr_str, token=t) as c:
                sub = c.subscribe("orders", "py1", start=subway.Start.beginning())
                await sub.ready()
                self.assertEqual((c.version, c.client), (3, "py"))
                await c.publish("orders", "py1", "hello")
                exp = await c.refresh_token(self.keys.mint(sub="py", subscribe=["orders/*"], ttl=7200))
                self.assertGreater(exp / 1000, time.time() + 3600)
                with self.assertRaises(subway.ServerError) as cm:
                    await c.publish("orders", "py1", "no longer allowed")
                self.assertEqual(cm.exception.code, subway.ErrorCode.FORBIDDEN)
                async for rec in sub:
                    self.assertEqual(rec.value, b"hello")
                    break
            with self.assertRaises(subway.SubwayError) as cm:
                async with subway.connect(self.n.addr_str, token="x.y.z", reconnect=False) as c:
                    pass
            self.assertEqual(cm.exception.code, subway.ErrorCode.UNAUTHORIZED)
        asyncio.run(asyncio.wait_for(main(), 30))

    def test_cli_shows_a_token(self):
        token = self.keys.mint(sub="cli", subscribe=["orders/*"], publish=["orders/*"])
        tf = write(tmp_path("token"), token + "\n")
        env = {"SUBWAY_TOKEN": token}
        r = run([bin_path("subway-cli"), "-s", self.n.addr_str, "pub", "orders", "c1", "v1"], env=env, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run([bin_path("subway-cli"), "-s", self.n.addr_str, "--token-file", tf, "sub", "orders", "c1",
                 "-o", "beginning", "-c", "1", "--no-resume"], timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("v1", r.stdout)
        r = run([bin_path("subway-cli"), "-s", self.n.addr_str, "pub", "orders", "c1", "v1"],
                env={"SUBWAY_TOKEN": ""}, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("UNAUTHORIZED", r.stderr)


class AuthOptionalTest(NodeCase):
    TOPICS = {"public": 1, "private": 1}

    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()
        cls.NODE_ARGS = ("--auth", "optional", "--anonymous-acl", "subscribe:public/*",
                         "--auth-hmac-key-file", cls.keys.hmac)
        super().setUpClass()

    def test_anonymous_gets_the_anonymous_acl(self):
        c = self.client(self.n)
        self.assertEqual(c.welcome.client, "")
        c.subscribe("public", "*")
        for fn in (lambda: c.subscribe("private", "k"), lambda: c.publish("public", b"k", b"v")):
            with self.assertRaises(wire.ServerError) as cm:
                fn()
            self.assertEqual(cm.exception.code, wire.E_FORBIDDEN)
        self.assertIn("anonymous may not", cm.exception.frame.text)

    def test_a_token_gets_its_own(self):
        c = self.client(self.n, token=self.keys.mint(sub="p", subscribe=["private/*"], publish=["public/*"]))
        c.subscribe("private", "k")
        self.assertEqual(c.publish("public", b"k", b"v").type, wire.PUBACK)
        with self.assertRaises(wire.ServerError) as cm:
            c.subscribe("public", "*")         # a token replaces the anonymous ACL, it does not add to it
        self.assertEqual(cm.exception.code, wire.E_FORBIDDEN)

    def test_a_bad_token_is_not_anonymous(self):
        c = self.client(self.n, hello=False, token="x.y.z")
        with self.assertRaises(wire.ServerError) as cm:
            c.hello()
        self.assertEqual(cm.exception.code, wire.E_UNAUTHORIZED)


class AuthConfigTest(NodeCase):
    TOPICS = {"t": 1}

    def start_fails(self, *args):
        r = run([bin_path("subway"), "--kafka", self.bootstrap, "--listen", "127.0.0.1:0", "--admin", "off",
                 *args], timeout=15)
        self.assertNotEqual(r.returncode, 0)
        return r.stderr

    def test_mistakes_stop_the_node_with_a_reason(self):
        short = write(tmp_path("short-secret"), "too short\n")
        self.assertIn("needs a key", self.start_fails("--auth", "required"))
        self.assertIn("at least 32", self.start_fails("--auth", "required", "--auth-hmac-key-file", short))
        self.assertIn("not a PEM public key", self.start_fails("--auth", "required", "--auth-public-key-file", short))
        self.assertIn("is not off, optional or required", self.start_fails("--auth", "maybe"))
        self.assertIn("--auth off ignores", self.start_fails("--anonymous-acl", "subscribe:a/*"))
        good = write(tmp_path("s40"), "k" * 40)
        self.assertIn("TOPIC/KEY", self.start_fails("--auth", "optional", "--auth-hmac-key-file", good,
                                                    "--anonymous-acl", "subscribe:nokey"))
