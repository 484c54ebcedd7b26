"""test_admin.py -- the admin HTTP endpoint: a bearer token off loopback, and limits a hostile HTTP client meets."""

import socket
import time

from harness import NodeCase, Node, free_port, run, bin_path, wait_until

TOKEN = "s3cret-admin-token"


class AdminTokenTest(NodeCase):
    TOPICS = {"adm": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.port = free_port()
        # Every interface: only with a token.
        cls.tn = Node(cls.bootstrap, ("--admin", "0.0.0.0:%d" % cls.port), admin_port=cls.port,
                      admin_token=TOKEN)
        cls.addClassCleanup(cls.tn.stop)

    def test_pages_need_the_bearer_token(self):
        for path in ("/stats", "/metrics", "/feeds", "/feeds/adm/k"):
            with self.subTest(path=path):
                status, body = self.tn.http_get(path, headers={})
                self.assertEqual(status, 401, body)
                self.assertIn("Authorization: Bearer", body)
                status, _ = self.tn.http_get(path, headers={"Authorization": "Bearer wrong-" + TOKEN})
                self.assertEqual(status, 401)
                status, _ = self.tn.http_get(path, headers={"Authorization": "Bearer " + TOKEN[:-1]})
                self.assertEqual(status, 401)
        self.assertEqual(self.tn.http_get("/stats")[0], 200)           # with the token
        self.assertEqual(self.tn.http_get("/metrics")[0], 200)
        self.assertEqual(self.tn.http_get("/nope")[0], 404)

    def test_health_checks_need_no_token(self):
        """Load balancers' checks carry no secret: /healthz and /readyz stay open."""
        self.assertEqual(self.tn.http_get("/healthz", headers={})[0], 200)
        self.assertEqual(self.tn.http_get("/readyz", headers={})[0], 200)

    def test_off_loopback_without_a_token_refuses_to_start(self):
        r = run([bin_path("subway"), "--kafka", self.bootstrap, "--listen", "127.0.0.1:%d" % free_port(),
                 "--admin", "0.0.0.0:%d" % free_port()], timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--admin-token-file", r.stderr)
        self.assertIn("reachable from other hosts", r.stderr)

    def test_endless_header_is_cut_off(self):
        """A header line that never ends is refused after 8 KiB; the node
        does not buffer megabytes of it (54.5 MB were accepted)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent, cut = 0, False
        chunk = b"a" * 65536
        t0 = time.monotonic()
        try:
            while sent < (8 << 20) and time.monotonic() - t0 < 10:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            cut = True
        if not cut:
            s.settimeout(5)
            try:
                reply = s.recv(4096)
            except OSError:
                reply = b""
            cut = reply == b"" or reply.startswith(b"HTTP/1.1 4")
        s.close()
        self.assertTrue(cut, "8 MB of one header line were taken")
        self.assertEqual(self.tn.http_get("/stats")[0], 200)
