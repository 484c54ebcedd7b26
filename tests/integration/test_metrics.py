"""test_metrics.py -- GET /metrics on the admin port: Prometheus's text format (checked with promtool), the README's list, and values that move with the traffic, on one node and in a cluster."""

import json
import os
import re
import shutil
import subprocess
import time

from harness import NodeCase, TestCase, java_partition, produce
import wire
from wire import MESSAGE

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana-subway.json")
HISTOGRAMS = ("subway_record_age_seconds", "subway_subscribe_seconds", "subway_redis_rtt_seconds",
              "subway_relay_lag_seconds")
BUCKETS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
           "5", "10", "+Inf"]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float} and {family: type} of an
    exposition; fails on a line that is neither a comment nor a sample."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def fetch(node):
    """(samples, types, text) of the node's /metrics; checks status and
    Content-Type."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=5)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read().decode("utf-8")
        if r.status != 200:
            raise AssertionError("GET /metrics answered %d: %s" % (r.status, body))
        ctype = r.getheader("Content-Type")
    finally:
        c.close()
    if not ctype.startswith("text/plain; version=0.0.4"):
        raise AssertionError("Content-Type %r" % ctype)
    samples, types = parse(body)
    return samples, types, body


def wait_metric(test, node, pred, what, timeout=10.0):
    """Polls /metrics until pred(samples) holds; returns those samples."""
    deadline = time.monotonic() + timeout
    while True:
        samples, _, _ = fetch(node)
        if pred(samples):
            return samples
        if time.monotonic() > deadline:
            test.fail("timed out waiting for %s" % what)
        time.sleep(0.05)


def promtool_check(test, text):
    """promtool check metrics on text; skips without promtool."""
    tool = shutil.which("promtool")
    if tool is None:
        test.skipTest("promtool is not installed (Debian package prometheus; deploy/install-deps.sh installs it)")
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    test.assertEqual(r.returncode, 0, "promtool check metrics: %s%s" % (r.stdout.decode(), r.stderr.decode()))


def assert_histograms(test, samples, types):
    """Every histogram is one, with the documented buckets, cumulative,
    +Inf equal to _count."""
    for h in HISTOGRAMS:
        test.assertEqual(types.get(h), "histogram", h)
        counts = [value(samples, h + "_bucket", le=le) for le in BUCKETS]
        test.assertEqual(counts, sorted(counts), "%s buckets are cumulative" % h)
        test.assertEqual(counts[-1], value(samples, h + "_count"), h)
        test.assertGreaterEqual(value(samples, h + "_sum"), 0, h)


def collect_messages(client, feed, n, timeout=15.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += [f for f in client.collect(0.1) if f.type == MESSAGE and f.feed == feed]
    if len(got) < n:
        raise AssertionError("%d of %d records came" % (len(got), n))
    return got


class MetricsNodeTest(NodeCase):
    TOPICS = {"mt": 2, "mtf": 1}
    NODE_ARGS = ("--metrics-per-feed", "2")

    def test_promtool_accepts_it(self):
        c = self.client(self.n)
        c.subscribe("mtf", 'q"uote\\')           # a per-feed series with a label to escape
        samples, types, text = fetch(self.n)
        self.assertEqual(value(samples, "subway_feed_subscribers", topic="mtf", key='q\\"uote\\\\'), 1)
        assert_histograms(self, samples, types)
        promtool_check(self, text)

    def test_every_metric_is_in_the_readme(self):
        with open(README, encoding="utf-8") as f:
            readme = f.read()
        documented = set(re.findall(r"^\| `(subway_[a-z_]+)`", readme, re.M))
        _, types, _ = fetch(self.n)
        exposed = set(types)
        self.assertFalse(exposed - documented, "in /metrics, not in README's Metrics")
        # subway_redis_up is there in a cluster only
        self.assertEqual(documented - exposed, {"subway_redis_up"}, "in README's Metrics, not in /metrics")
        for le in BUCKETS[:-1]:
            self.assertIn(le, readme)

    def test_grafana_dashboard_uses_these_metrics(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            dash = json.load(f)
        _, types, _ = fetch(self.n)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertTrue(exprs)
        used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"subway_[a-z_]+", e)}
        self.assertFalse(used - set(types) - {"subway_redis_up"}, "the dashboard asks for metrics nobody exposes")

    def test_single_node_gauges(self):
        samples, types, _ = fetch(self.n)
        self.assertNotIn("subway_redis_up", types, "no Redis without a cluster")
        wait_metric(self, self.n, lambda m: value(m, "subway_kafka_up") == 1, "Kafka's first probe answered")
        self.assertEqual(value(samples, "subway_draining"), 0)
        self.assertEqual(types["subway_feeds"], "gauge")
        for role in ("owner", "relay", "pending"):
            self.assertGreaterEqual(value(samples, "subway_feeds", role=role), 0)
        self.assertEqual(value(samples, "subway_feeds", role="relay"), 0)

    def test_values_move_with_records(self):
        key = "age-key"
        before, _, _ = fetch(self.n)
        c = self.client(self.n)
        conns = value(before, "subway_connections")
        s = c.subscribe("mt", key)
        after_sub = wait_metric(self, self.n, lambda m: value(m, "subway_subscribe_seconds_count")
                                >= value(before, "subway_subscribe_seconds_count") + 1, "a SUBSCRIBE observed")
        self.assertEqual(value(after_sub, "subway_connections"), conns + 1)
        self.assertGreaterEqual(value(after_sub, "subway_subscriptions"), value(before, "subway_subscriptions") + 1)
        self.assertGreaterEqual(value(after_sub, "subway_feeds", role="owner"), 1)
        self.produce("mt", [(key, "v%d" % i) for i in range(5)], partition=java_partition(key, 2))
        collect_messages(c, s.feed, 5)
        after = wait_metric(self, self.n, lambda m: value(m, "subway_records_out_total")
                            >= value(before, "subway_records_out_total") + 5, "records_out to grow by 5")
        self.assertGreaterEqual(value(after, "subway_records_in_total"), value(before, "subway_records_in_total") + 5)
        self.assertGreater(value(after, "subway_bytes_in_total"), value(before, "subway_bytes_in_total"))
        self.assertGreaterEqual(value(after, "subway_record_age_seconds_count"),
                                value(before, "subway_record_age_seconds_count") + 5)
        # records just produced on loopback: well under 10 s old
        self.assertGreaterEqual(value(after, "subway_record_age_seconds_bucket", le="10"),
                                value(before, "subway_record_age_seconds_bucket", le="10") + 5)
        self.assertGreaterEqual(value(after, "subway_feed_records_total", topic="mt", key=key), 5)

    def test_per_feed_series_are_capped(self):
        c = self.client(self.n)
        for k in ("cap1", "cap2", "cap3"):
            c.subscribe("mtf", k)
        samples, _, _ = fetch(self.n)
        series = [k for k in samples if k[0] == "subway_feed_subscribers"]
        self.assertEqual(len(series), 2, series)

    def test_protocol_error_close_counted(self):
        label = dict(reason="protocol_error")
        before, _, _ = fetch(self.n)
        c = self.client(self.n, hello=False)
        c.send(wire.PING, 1)                     # anything but HELLO first
        c.expect_error(timeout=5)
        wait_metric(self, self.n, lambda m: value(m, "subway_connections_closed_total", **label)
                    >= value(before, "subway_connections_closed_total", **label) + 1, "a protocol_error close")


class MetricsClusterTest(TestCase):
    """Two nodes on one Redis: Redis up and its round trips, and a relay's lag."""

    def test_cluster_metrics(self):
        cl = self.cluster({"mc": 2}, 2, ["--lease-ms", "1000"], haproxy=False)
        n1, n2 = cl.nodes
        for n in (n1, n2):
            samples, types, text = fetch(n)
            self.assertEqual(value(samples, "subway_redis_up"), 1, n.node_id)
            assert_histograms(self, samples, types)
        key = "relay-key"
        a = self.client(n1)
        sa = a.subscribe("mc", key)               # n1 owns mc/relay-key
        wait_metric(self, n1, lambda m: value(m, "subway_feeds", role="owner") == 1, "n1 to own the feed")
        b = self.client(n2)
        sb = b.subscribe("mc", key)               # n2 relays it
        wait_metric(self, n2, lambda m: value(m, "subway_feeds", role="relay") == 1, "n2 to relay the feed")
        before, _, _ = fetch(n2)
        self.assertGreater(value(before, "subway_redis_rtt_seconds_count"), 0, "the SUBSCRIBE's scripts")
        produce(cl.kafka.bootstrap, "mc", [(key, "r%d" % i) for i in range(5)], partition=java_partition(key, 2))
        collect_messages(a, sa.feed, 5)
        collect_messages(b, sb.feed, 5)
        after = wait_metric(self, n2, lambda m: value(m, "subway_relay_lag_seconds_count")
                            >= value(before, "subway_relay_lag_seconds_count") + 5, "relay lag observed on n2")
        self.assertGreaterEqual(value(after, "subway_records_out_total"), value(before, "subway_records_out_total") + 5)
        self.assertEqual(value(after, "subway_records_in_total"), value(before, "subway_records_in_total"),
                         "a relay reads nothing from Kafka for it")
        _, _, text = fetch(n2)
        promtool_check(self, text)
