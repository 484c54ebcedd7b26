"""test_coord_scripts.py -- coordination scripts on the wire through real nodes: EVALSHA only, recovery after
SCRIPT FLUSH, the per-topic index, and demand events for a feed name over 600 bytes (a reap's included).
"""

import socket
import threading

from harness import TestCase, feed_key, wait_until
from test_demand import DemandListener


class Monitor:
    """The command names a redis-server executes (MONITOR, raw RESP)."""

    def __init__(self, port):
        self.lines = []
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.f = self.sock.makefile("rb")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            for line in self.f:
                self.lines.append(line)
        except (OSError, ValueError):
            return

    def count(self, name):
        return sum(1 for l in self.lines if (b'] "%s" ' % name) in l)

    def close(self):
        self.sock.close()


class CoordScriptsTest(TestCase):
    def test_evalsha_on_the_wire_and_script_flush(self):
        c = self.cluster({"orders": 2}, nodes=2, node_args=["--linger-ms", "200"], haproxy=False)
        mon = Monitor(c.redis.port)
        self.addCleanup(mon.close)
        a = self.client(c.nodes[0])
        s1 = a.subscribe("orders", b"cust-1")
        wait_until(lambda: mon.count(b"EVALSHA") >= 1, 5, "an EVALSHA")
        self.assertEqual(mon.count(b"EVAL"), 0)
        self.assertEqual(c.redis.call("SCARD", "subway:topic:{orders}:feeds"), 1)
        # The server forgets its scripts: the next subscription still works
        # (one EVAL re-send), and counts stay exact.
        c.redis.call("SCRIPT", "FLUSH")
        b = self.client(c.nodes[1])
        s2 = b.subscribe("orders", b"cust-1")
        self.assertEqual(c.redis.call("GET", feed_key("orders", "cust-1", "count")), "2")
        wait_until(lambda: mon.count(b"EVAL") >= 1, 5, "an EVAL re-send on MONITOR")   # its reader is a thread
        self.assertEqual(c.redis.smembers("subway:topic:{orders}:feeds"), {"n1 orders/cust-1", "n2 orders/cust-1"})
        a.unsubscribe(s1.feed)
        b.unsubscribe(s2.feed)
        c.wait(lambda: c.redis.call("GET", feed_key("orders", "cust-1", "count")) is None, 5, "count gone")
        c.wait(lambda: c.redis.call("EXISTS", "subway:topic:{orders}:feeds") == 0, 5, "index empty")

    def test_demand_events_for_a_long_feed_name_and_a_reap(self):
        c = self.cluster({"orders": 2}, nodes=2, node_args=["--linger-ms", "200", "--node-ttl-ms", "1000",
                                                            "--reap-interval-ms", "250"], haproxy=False)
        ev = DemandListener(c.redis.port)
        self.addCleanup(ev.close)
        key = "k" * 700
        name = "orders/" + key
        a = self.client(c.nodes[0])
        a.subscribe("orders", key.encode())
        wait_until(lambda: ev.of(name) == ["demand"], 5, "a demand event")
        self.assertEqual(ev.events[-1]["node"], "n1")
        c.nodes[0].kill9()                    # the only holder dies; n2 reaps it
        wait_until(lambda: ev.of(name) == ["demand", "release"], 10, "the reap's release event")
        self.assertEqual(ev.events[-1]["node"], "n1")
        self.assertEqual(ev.events[-1]["key"], key)
        c.wait(lambda: c.redis.call("EXISTS", "subway:topic:{orders}:feeds") == 0, 5, "the reaper cleaned the index")
