"""test_adversarial_auth.py -- forged, confused and odd tokens, ACL edge cases, and floods from token holders, against a real node.

Each test is an attack that was tried on the access control of issue 11:
the ones that got through are fixed (the test says which commit's bug it
pins), the ones that did not stay as regression tests. A test marked
expectedFailure is a problem found and not yet fixed (its docstring says
where); it turns into a failure ("unexpected success") once fixed, so
whoever fixes it removes the mark.
"""

import base64
import hashlib
import hmac
import importlib.machinery
import importlib.util
import json
import os
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import MockKafka, Node, NodeCase, REPO, class_fixture, tmp_path
import wire
from wire import frame, packb


def _load_minter():
    path = os.path.join(REPO, "deploy", "subway-token")
    loader = importlib.machinery.SourceFileLoader("subway_token", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("subway_token", loader))
    loader.exec_module(mod)
    return mod


minter = _load_minter()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(secret, header, payload):
    """An HS256 token over header and payload given as JSON bytes (so
    duplicate keys and odd numbers survive) or as objects."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = b64(h) + "." + b64(p)
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


HS = {"alg": "HS256", "typ": "JWT"}
EXP = int(time.time()) + 3600


class AdversarialTokenTest(NodeCase):
    TOPICS = {"orders": 2, "search.a": 1, "secret": 1}

    @classmethod
    def setUpClass(cls):
        cls.secret = base64.b64encode(os.urandom(48))
        secret_file = tmp_path("adv-hmac")
        with open(secret_file, "wb") as f:
            f.write(cls.secret + b"\n")
        cls.ec = tmp_path("adv-ec.pem")
        cls.ec_pub = tmp_path("adv-ec.pub")
        for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", cls.ec],
                     ["pkey", "-in", cls.ec, "-pubout", "-out", cls.ec_pub]):
            subprocess.run(["openssl", *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.NODE_ARGS = ("--auth", "required", "--auth-hmac-key-file", secret_file,
                         "--auth-public-key-file", cls.ec_pub, "--linger-ms", "200")
        super().setUpClass()

    def token(self, payload, header=HS):
        return raw_token(self.secret, header, payload)

    def refused(self, token, why):
        c = self.client(self.n, hello=False, token=token)
        with self.assertRaises(wire.ServerError) as cm:
            c.hello()
        self.assertEqual(cm.exception.code, wire.E_UNAUTHORIZED, cm.exception.frame)
        self.assertIn(why, cm.exception.frame.text)
        c.expect_closed(5)

    # ---- claims

    def test_exp_zero_is_expired_not_never(self):
        """"exp": 0 (or any expiry that rounds to 0 ms) expired in 1970.
        It was taken for "no exp": the token was accepted and never
        expired (WELCOME said expires_ms 0)."""
        for exp in ("0", "0.0004", "-0.0", "0e5"):
            with self.subTest(exp=exp):
                self.refused(self.token(('{"sub":"z","exp":%s}' % exp).encode()), "expired")

    def test_sub_with_c1_controls_is_refused(self):
        """sub must be printable: the C1 controls (U+0080..U+009F, e.g. CSI,
        which some terminals obey) were let through to logs and pages."""
        for sub in ("a\u009b31mred", "a\u0085b", "\u0080"):
            with self.subTest(sub=ascii(sub)):
                self.refused(self.token({"sub": sub, "exp": EXP}), "printable")
        c = self.client(self.n, token=self.token({"sub": "caf\u00e9 \u00a0\u2603", "exp": EXP}))
        self.assertEqual(c.welcome.client, "caf\u00e9 \u00a0\u2603")

    # ---- forms and confusions

    def test_confused_and_malformed_tokens_are_refused(self):
        good = self.token({"sub": "g", "exp": EXP})
        h, p, s = good.split(".")
        with open(self.ec_pub, "rb") as f:
            pem = f.read()
        cases = {
            "duplicate exp (expired first)": (self.token(b'{"sub":"d","exp":1,"exp":%d}' % EXP), "JSON object"),
            "duplicate alg (none first)": (self.token({"sub": "d"}, b'{"alg":"none","alg":"HS256"}'), "JSON object"),
            "duplicate subway lists": (self.token(b'{"sub":"d","subway":{"subscribe":["secret/*"],'
                                                  b'"subscribe":["orders/x"]}}'), "JSON object"),
            "crit, even empty": (self.token({"sub": "c"}, {"alg": "HS256", "crit": []}), "crit"),
            "alg in lower case": (self.token({"sub": "c"}, {"alg": "hs256"}), "HS256, RS256 or ES256"),
            "alg ES256 on an HMAC signature": (self.token({"sub": "c"}, {"alg": "ES256"}), "does not verify"),
            "HS256 with the EC public key as secret": (raw_token(pem, HS, {"sub": "c"}), "does not verify"),
            "HS256 with the PEM's base64 as secret": (
                raw_token(b"".join(pem.splitlines()[1:-1]), HS, {"sub": "c"}), "does not verify"),
            "exp beyond 64 bits": (self.token(b'{"sub":"n","exp":99999999999999999999999}'), "JSON object"),
            "exp 1e400": (self.token(b'{"sub":"n","exp":1e400}'), "JSON object"),
            "exp past year 318857": (self.token({"sub": "n", "exp": 1e13 + 1}), "NumericDate"),
            "exp as a string": (self.token({"sub": "n", "exp": str(EXP)}), "NumericDate"),
            "nbf negative": (self.token({"sub": "n", "nbf": -1}), "NumericDate"),
            "sub with a NUL": (self.token(b'{"sub":"a\\u0000b"}'), "JSON object"),
            "sub of 129 bytes": (self.token({"sub": "x" * 129}), "sub"),
            "sub with a newline": (self.token({"sub": "a\nb"}), "sub"),
            "payload an array": (self.token(b'[{"sub":"a"}]'), "JSON object"),
            "BOM before the payload": (self.token(b'\xef\xbb\xbf{"sub":"a"}'), "JSON object"),
            "padded signature": (good + "=", "base64url"),
            "padded parts": (".".join(x + "=" * (-len(x) % 4) for x in (h, p, s)), "base64url"),
            "standard base64 alphabet": (good.replace("-", "+").replace("_", "/") if "-" in good or "_" in good
                                         else good[:-1] + "+", "base64url"),
            "trailing newline": (good + "\n", "base64url"),
            "signature with stray low bits": (good[:-1] + chr(ord(good[-1]) ^ 1), None),
            "four parts": (good + ".x", "not a JWT"),
            "empty signature": (h + "." + p + ".", "does not verify"),
        }
        for name, (token, why) in cases.items():
            with self.subTest(case=name):
                self.refused(token, why or "")

    def test_token_lengths_at_the_limits(self):
        """A token may be 12288 bytes (it must fit the 16 KiB HELLO);
        one byte more is refused, and a HELLO over 16 KiB is too large."""
        def sized(n):
            pad = 0
            while True:
                t = self.token({"sub": "long", "exp": EXP, "pad": "x" * pad})
                if len(t) >= n:
                    return t
                pad += max(1, (n - len(t)) * 3 // 4)
        tokens = {n: sized(n) for n in (12287, 12288, 12290, 16400)}
        ok = next(t for t in tokens.values() if len(t) <= 12288)
        self.assertEqual(self.client(self.n, token=ok).welcome.client, "long")
        self.refused(tokens[12290], "longer than 12288")
        c = self.raw_client(self.n)
        c.send_raw(frame(packb([wire.HELLO, 3, "big", tokens[16400]])))
        self.assertEqual(c.expect_error(timeout=5).code, wire.E_FRAME_TOO_LARGE)
        c.expect_closed(5)
        # After HELLO frames may be 1 MiB, but AUTH's token is still capped.
        c = self.client(self.n, token=ok)
        with self.assertRaises(wire.ServerError) as cm:
            c.auth(tokens[16400])
        self.assertEqual(cm.exception.code, wire.E_UNAUTHORIZED)
        self.assertIn("longer than", cm.exception.frame.text)

    # ---- the ACL on a real node

    def test_acl_edge_keys(self):
        c = self.client(self.n, token=self.token({"sub": "edge", "exp": EXP, "subway": {
            "subscribe": ["orders/a*b", "orders/k/*", "search.*/*", "orders/cust-*"],
            "publish": ["orders/p?"]}}))

        def forbidden_or_invalid(fn):
            with self.assertRaises(wire.ServerError) as cm:
                fn()
            self.assertIn(cm.exception.code, (wire.E_FORBIDDEN, wire.E_INVALID_ARG), cm.exception.frame)
            return cm.exception.code

        c.subscribe("orders", b"a*xb", raw_key=True)          # '*' in a key does not defeat the pattern's '*'
        c.subscribe("orders", b"k/\x00\xff/x", raw_key=True)   # NUL, non-UTF-8 and '/' are bytes like others
        c.subscribe("search.a", "*")                           # key part exactly '*': the every-key feed
        for topic, key in (("orders", None),                   # cust-* is not the whole topic
                           ("orders", b"*"), ("orders", b""),  # nor are these spellings of it
                           ("orders\x00", b"cust-1"), ("orders/x", b"cust-1"), ("secret", b"cust-1"),
                           ("orders", b"k"), ("orders", b"ab\x00"), ("ORDERS", b"cust-1")):
            with self.subTest(topic=topic, key=key):
                forbidden_or_invalid(lambda: c.subscribe(topic, key, raw_key=True))
        self.assertEqual(c.publish("orders", b"p1", b"v").type, wire.PUBACK)
        for topic, key in (("orders", None), ("orders", b"p12"), ("orders\x00x", b"p1"), ("orders", b"p")):
            with self.subTest(publish=topic, key=key):
                forbidden_or_invalid(lambda: c.publish(topic, key, b"v"))
        self.assertEqual(c.ping(3).token, 3)

    # ---- floods from a token holder

    def test_auth_flood_does_not_starve_a_subscriber(self):
        """Each AUTH costs a signature check (ES256: ~0.1-0.2 ms), and a
        connection got CONN_FRAMES_PER_EVENT (1024) frames a turn whatever
        they cost: four token holders pipelining AUTHs stalled a watcher's
        PING for 0.9 s. AUTH is now rate-limited per connection (input
        waits, as for PUBLISH)."""
        es = minter.mint({"sub": "flood", "exp": EXP}, "ES256", private_key_file=self.ec)
        watcher = self.client(self.n, token=self.token({"sub": "w", "exp": EXP}))
        flood = b"".join(wire.encode(wire.AUTH, i + 1, es) for i in range(5000))
        flooders = [self.client(self.n, token=es) for _ in range(4)]

        def send(c):
            c.sock.setblocking(True)
            try:
                c.sock.sendall(flood)
            except OSError:
                pass
        threads = [threading.Thread(target=send, args=(c,), daemon=True) for c in flooders]
        for t in threads:
            t.start()
        worst, deadline, i = 0.0, time.monotonic() + 3, 0
        try:
            while time.monotonic() < deadline:
                i += 1
                t0 = time.monotonic()
                watcher.ping(i, timeout=20)
                worst = max(worst, time.monotonic() - t0)
        finally:
            for c in flooders:    # RST: what the node has not read yet is dropped, not verified
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
        self.assertLess(worst, 0.3, "a watcher's PING waited %.2f s behind AUTH floods" % worst)


class AdminTokenFileTest(NodeCase):
    """README: the admin's bearer token is the first line of
    --admin-token-file. The whole file was taken, so a file with a note
    under the token locked every client of the admin out."""

    TOPICS = {"t": 1}

    @classmethod
    def setUpClass(cls):
        path = tmp_path("admin-token-with-note")
        with open(path, "w") as f:
            f.write("s3cret-admin \n# rotated by ops, next rotation in March\n")
        super(NodeCase, cls).setUpClass()
        cls.kafka = class_fixture(cls, MockKafka(cls.TOPICS))
        cls.bootstrap = cls.kafka.bootstrap
        cls.node_ = class_fixture(cls, Node(cls.bootstrap, ("--admin-token-file", path), wait=False))
        cls.node_.admin_token = "s3cret-admin"     # what http_get() sends, readiness checks included
        cls.node_.wait_ready(timeout=10)

    def test_the_token_is_the_first_line(self):
        bearer = lambda t: {"Authorization": "Bearer " + t}
        self.assertEqual(self.n.http_get("/stats", headers=bearer("s3cret-admin"))[0], 200)
        for wrong in ("s3cret-admi", "s3cret-admin x", "s3cret-admin\t# rotated", ""):
            with self.subTest(token=wrong):
                self.assertEqual(self.n.http_get("/stats", headers=bearer(wrong))[0], 401)
        self.assertEqual(self.n.http_get("/healthz", headers={})[0], 200)
