"""test_heartbeat.py -- a peer silent past the heartbeat timeout is closed and released."""

import re
import time

from harness import NodeCase
import wire


class HeartbeatTest(NodeCase):
    TOPICS = {"hb": 2}
    NODE_ARGS = ("--heartbeat-ms", "200", "--heartbeat-timeout-ms", "600", "--linger-ms", "200")

    def test_silent_client_is_closed_good_client_stays(self):
        good = self.client(self.n)
        self.assertEqual(good.welcome.heartbeat_ms, 200)
        gsub = good.subscribe("hb", "*")
        silent = self.client(self.n, auto_pong=False)
        silent.subscribe("hb", "s")
        before = self.n.stats()
        self.assertEqual(before["subscriptions"], 2)

        # wait for the silent one's ERROR while the good one keeps answering
        t0 = time.monotonic()
        err = None
        while err is None:
            self.assertLess(time.monotonic() - t0, 5, "no ERROR HEARTBEAT_TIMEOUT within 5 s")
            good.collect(0.05)
            try:
                err = silent.expect_error(timeout=0.05)
            except TimeoutError:
                pass
        took = time.monotonic() - t0
        self.assertEqual(err.code, wire.E_HEARTBEAT_TIMEOUT, err)
        self.assertEqual(err.req_id, 0)
        self.assertIsInstance(err.text, str)
        self.assertGreaterEqual(len(silent.pings), 1, "no PING before the timeout")
        silent.expect_closed(2)
        self.assertLess(took, 3.0)

        # (the good client keeps answering PINGs meanwhile: it reads as it waits)
        st = self.n.wait_stats(lambda st: not good.collect(0.05) and st["subscriptions"] == 1
                               and st["connections"] == 1, timeout=5,
                               what="the silent client's subscription released, its connection closed")
        self.assertEqual(st["counters"]["heartbeat_closed"], before["counters"]["heartbeat_closed"] + 1)
        self.assertEqual(st["connections"], 1)

        # the client that answers PINGs outlives several timeouts
        good.collect(1.5)
        self.assertFalse(good.closed)
        self.assertGreaterEqual(len(good.pings), 3)
        self.produce("hb", [("g", "still here")])
        self.assertEqual(good.messages(1, feed=gsub.feed)[0].value, b"still here")

    def test_client_ping_is_answered(self):
        c = self.client(self.n)
        for token in (0, 1, 2 ** 32, 2 ** 64 - 1):
            self.assertEqual(c.ping(token).token, token)


class HeartbeatDefaultTest(NodeCase):
    TOPICS = {"hbd": 1}
    NODE_ARGS = ("--heartbeat-ms", "200")

    def test_timeout_follows_the_interval(self):
        """Without --heartbeat-timeout-ms the timeout is 3 x --heartbeat-ms
        (PROTOCOL.md 5.2), not a fixed 15 s: silent for 600 ms, closed."""
        silent = self.client(self.n, auto_pong=False)
        t0 = time.monotonic()
        err = silent.expect_error(timeout=5)
        self.assertEqual(err.code, wire.E_HEARTBEAT_TIMEOUT, err)
        self.assertLess(time.monotonic() - t0, 3.0)
        silent_ms = int(re.search(r"nothing received for (\d+) ms", err.text).group(1))
        self.assertGreaterEqual(silent_ms, 600)
