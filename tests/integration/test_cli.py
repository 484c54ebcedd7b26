"""test_cli.py -- subway-cli: pub prints PARTITION OFFSET, sub prints records, errors exit non-zero.

The CLI takes the node address as -s HOST:PORT before the command (see
harness.cli_argv).
"""

import re

from harness import NodeCase, cli_argv, consume, java_partition, run


class CliTest(NodeCase):
    TOPICS = {"pubt": 3, "subt": 3, "subw": 2}
    NODE_ARGS = ("--linger-ms", "200")

    def cli(self, *args, timeout=15):
        return run(cli_argv(self.n.addr_str, *args), timeout=timeout)

    def test_pub_prints_partition_offset(self):
        watcher = self.client(self.n)
        sub = watcher.subscribe("pubt", "pk")
        r = self.cli("pub", "pubt", "pk", "hello from cli")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"(\d+) (\d+)\n", r.stdout)
        self.assertIsNotNone(m, "pub printed %r" % r.stdout)
        part, off = int(m.group(1)), int(m.group(2))
        # the node's producer partitions like the Java client (murmur2), so
        # exact-key subscribers, which read only that partition, see it
        self.assertEqual(part, java_partition("pk", 3))
        rec = consume(self.bootstrap, "pubt", partition=part, offset=off, count=1)
        self.assertEqual((rec[0]["partition"], rec[0]["offset"], rec[0]["key"], rec[0]["value"]),
                         (part, off, "pk", "hello from cli"))
        msg = watcher.messages(1, feed=sub.feed)[0]
        self.assertEqual((msg.partition, msg.offset, msg.key, msg.value),
                         (part, off, b"pk", b"hello from cli"))

    def test_raw_publish_puback(self):
        c = self.client(self.n)
        ack = c.publish("pubt", "rk", "raw")
        self.assertEqual(ack.partition, java_partition("rk", 3))
        rec = consume(self.bootstrap, "pubt", partition=ack.partition, offset=ack.offset, count=1)
        self.assertEqual((rec[0]["key"], rec[0]["value"]), ("rk", "raw"))

    def test_sub_count_format_verbose(self):
        p = self.proc(cli_argv(self.n.addr_str, "sub", "-v", "-c", 3, "subt", "sk"), name="subway-cli-sub")
        m = p.wait_log(r"^subscribed subt/sk feed=(\d+) partitions=(\S+)$", timeout=10)
        self.assertEqual(m.group(2), str(java_partition("sk", 3)))
        feed = int(m.group(1))
        self.assertEqual(self.n.feed("subt", "sk")["handle"], feed)
        self.produce("subt", [("sk", "one"), ("other", "x"), ("sk", "two"), ("sk", "three"), ("sk", "four")])
        self.assertEqual(p.wait_exit(10), 0, p.tail())
        self.assertEqual(p.stdout(), "sk\tone\nsk\ttwo\nsk\tthree\n")

    def test_sub_wildcard(self):
        p = self.proc(cli_argv(self.n.addr_str, "sub", "-c", 2, "subw", "*"), name="subway-cli-sub")
        self.n.wait_stats(lambda st: self.n.feed("subw", None, st) is not None, what="the CLI's subw/* feed")
        self.produce("subw", [("a", "1"), ("b", "2")], partition=0)
        self.assertEqual(p.wait_exit(10), 0, p.tail())
        self.assertEqual(p.stdout(), "a\t1\nb\t2\n")

    def test_sub_unknown_topic(self):
        r = self.cli("sub", "no-such-topic", "k", timeout=15)
        self.assertNotEqual(r.returncode, 0)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "want a one-line reason, got: %r" % r.stderr)
        self.assertIn("no-such-topic", lines[0])
        self.assertEqual(r.stdout, "")
