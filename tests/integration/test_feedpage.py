"""test_feedpage.py -- the feed table over HTTP: GET /feeds (pages, 400s), /feeds/TOPIC/KEY (one feed, 404s) and their HTML in headless Chromium."""

import html
import json
import re
import shutil
import subprocess
import urllib.parse

import harness
from harness import NodeCase, TestCase, wait_until


class FeedPageTest(NodeCase):
    TOPICS = {"fpa": 4, "fpb": 2, "fph": 3, "fpo": 4}

    def sub(self, topic, key):
        c = self.n.client()
        self.addCleanup(c.close)
        return c.subscribe(topic, key)

    def get_json(self, path, status=200):
        code, body = self.n.http_get(path)
        self.assertEqual(code, status, body)
        return json.loads(body)

    def test_list_sorted_and_paginated(self):
        keys = ["k3", "k1", "k2", "k10"]
        for k in keys:
            self.sub("fpa", k)
        self.sub("fpa", None)
        self.sub("fpb", "z")
        whole = self.get_json("/feeds?per_page=1000")
        self.assertEqual((whole["page"], whole["per_page"]), (1, 1000))
        self.assertEqual(whole["total"], len(whole["results"]))
        mine = [(f["topic"], f["key"]) for f in whole["results"] if f["topic"] in ("fpa", "fpb")]
        self.assertEqual(mine, [("fpa", None), ("fpa", "k1"), ("fpa", "k10"), ("fpa", "k2"), ("fpa", "k3"),
                                ("fpb", "z")])
        one = next(f for f in whole["results"] if f["topic"] == "fpa" and f["key"] == "k1")
        self.assertEqual((one["subscribers"], one["role"], one["records"], one["last_record_age_ms"]),
                         (1, "owner", 0, None))
        self.assertEqual(len(one["partitions"]), 1)
        for field in ("lingering", "cluster_count", "handle", "ready"):
            self.assertIn(field, one)
        self.assertEqual(self.get_json("/feeds")["per_page"], 50)
        pages, page = [], 1
        while True:
            p = self.get_json("/feeds?page=%d&per_page=2" % page)
            self.assertEqual((p["page"], p["per_page"], p["total"]), (page, 2, whole["total"]))
            if not p["results"]:
                break
            self.assertLessEqual(len(p["results"]), 2)
            pages += p["results"]
            page += 1
        self.assertEqual([(f["topic"], f["key"]) for f in pages], [(f["topic"], f["key"]) for f in whole["results"]])
        self.assertEqual(self.get_json("/feeds?per_page=999999")["per_page"], 1000)

    def test_bad_parameters_are_400(self):
        for q in ("page=0", "page=-1", "page=x", "page=", "per_page=0", "per_page=1e3", "page=99999999999",
                  "per_page=%2B5"):
            code, body = self.n.http_get("/feeds?" + q)
            self.assertEqual(code, 400, q)
            self.assertIn("error", json.loads(body), q)
        self.assertRegex(json.loads(self.n.http_get("/feeds?page=0")[1])["error"], r"^page must be")

    def test_one_feed(self):
        s = self.sub("fpo", "cust-1")
        self.sub("fpo", None)
        self.produce("fpo", [("cust-1", "v%d" % i) for i in range(3)])
        p = s.partitions[0]
        self.n.wait_stats(lambda st: (self.n.feed("fpo", "cust-1", st) or {}).get("records") == 3,
                          what="fpo/cust-1 has 3 records")
        f = self.get_json("/feeds/fpo/cust-1")
        self.assertEqual((f["topic"], f["key"], f["subscribers"], f["records"], f["partitions"]),
                         ("fpo", "cust-1", 1, 3, [p]))
        self.assertIsInstance(f["last_record_age_ms"], int)
        self.assertGreaterEqual(f["last_record_age_ms"], 0)
        self.assertEqual([(o["partition"], o["next_off"], o["assigned"]) for o in f["offsets"]], [(p, 3, True)])
        w = self.get_json("/feeds/fpo/*")
        self.assertIsNone(w["key"])
        self.assertEqual([o["partition"] for o in w["offsets"]], [0, 1, 2, 3])

    def test_binary_key_url_decoded(self):
        key = b"a/b c\x01\xff*"
        self.sub("fpo", key)
        f = self.get_json("/feeds/fpo/" + urllib.parse.quote(key, safe=""))
        self.assertEqual(f["key"], key.decode("latin-1"))
        self.get_json("/feeds/fpo/%2A", status=404)   # the key "*", not the every-key feed

    def test_unknown_is_404(self):
        for path in ("/feeds/fpo/no-such-key", "/feeds/no-such-topic/k", "/feeds/fpo", "/feeds/", "/nothing"):
            code, body = self.n.http_get(path)
            self.assertEqual(code, 404, path)
            self.assertIn("error", json.loads(body), path)


class FeedPageHtmlTest(NodeCase):
    TOPICS = {"fhtml": 4, "fhpage": 2}
    # The test's clients answer PINGs only when read, and a headless
    # Chromium can take longer than the default 15 s to start on a loaded
    # machine: closed for silence, their feeds left the page it then showed.
    NODE_ARGS = ("--heartbeat-ms", "60000")

    def chromium_dom(self, path):
        exe = shutil.which("chromium")
        if exe is None:
            self.skipTest("chromium is not installed (deploy/install-deps.sh installs it): no HTML check")
        r = subprocess.run([exe, "--headless", "--disable-gpu", "--no-sandbox",
                            "--user-data-dir=" + harness.tmp_path("chromium-profile"),
                            "--dump-dom", "http://127.0.0.1:%d%s" % (self.n.admin_port, path)],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode("utf-8", "replace")[-2000:])
        return r.stdout.decode("utf-8")

    def rows(self, dom, table="feeds"):
        body = re.search(r'<table id="%s">.*?<tbody>(.*?)</tbody>' % table, dom, re.S).group(1)
        return [[html.unescape(re.sub(r"<[^>]*>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
                for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]

    def test_table_in_chromium(self):
        for k in ("cust-2", "cust-1", "<b>&x", b"bin\x02"):
            c = self.n.client()
            self.addCleanup(c.close)
            c.subscribe("fhtml", k)
        dom = self.chromium_dom("/feeds")
        rows = [r for r in self.rows(dom) if r[0] == "fhtml"]
        self.assertEqual([r[1] for r in rows], ["<b>&x", "bin\\x02", "cust-1", "cust-2"])
        self.assertEqual({r[2] for r in rows}, {"owner"})
        self.assertEqual({r[3] for r in rows}, {"1"})
        self.assertNotIn("<b>&x", dom)                   # escaped, not markup
        self.assertIn('href="/feeds/fhtml/%3Cb%3E%26x"', dom)
        self.assertIn("<script>", dom)                   # the sorting script, inline
        self.assertNotRegex(dom, r'(src|href)="https?:')  # no external assets
        one = self.chromium_dom("/feeds/fhtml/bin%02")
        self.assertIn("bin\\x02", one)
        self.assertEqual(len(self.rows(one)), 1)         # its one partition

    def test_html_pagination_links(self):
        for k in ("p1", "p2", "p3"):
            c = self.n.client()
            self.addCleanup(c.close)
            c.subscribe("fhpage", k)
        dom = self.chromium_dom("/feeds?page=2&per_page=1")
        self.assertEqual(len(self.rows(dom)), 1)
        self.assertIn('href="/feeds?page=1&amp;per_page=1"', dom)
        self.assertIn('href="/feeds?page=3&amp;per_page=1"', dom)


class ClusterFeedsTest(TestCase):
    """GET /cluster/feeds: the cluster's feed table, read from Redis by any node."""

    def test_every_nodes_feeds_with_counts_and_owners(self):
        c = self.cluster({"cf": 2}, nodes=2, haproxy=False, node_args=("--linger-ms", "200"))
        n1, n2 = c.nodes
        a = self.client(n1)
        b = self.client(n2)
        a.subscribe("cf", "k1")
        b.subscribe("cf", "k1")
        b.subscribe("cf", "k2")
        a.subscribe("cf", "*")

        def table(node, query=""):
            code, body = node.http_get("/cluster/feeds" + query)
            self.assertEqual(code, 200, body)
            return json.loads(body)

        def rows(t):
            return {(r["topic"], r["key"]): r for r in t["results"]}
        wait_until(lambda: table(n2)["total"] == 3 and all(r["owner"] for r in table(n2)["results"]),
                   timeout=10, what="three feeds with owners in the cluster table")
        for node in (n1, n2):               # the same table from either node
            t = rows(table(node))
            self.assertEqual(set(t), {("cf", None), ("cf", "k1"), ("cf", "k2")})
            self.assertEqual((t[("cf", "k1")]["count"], t[("cf", "k2")]["count"], t[("cf", None)]["count"]),
                             (2, 1, 1))
            self.assertTrue(t[("cf", "k2")]["owner"].startswith(n2.node_id + ":"), t)
            self.assertGreater(t[("cf", "k1")]["owner_ttl_ms"], 0)
        # Pages are slices of the sorted table.
        p1, p2 = table(n1, "?per_page=2"), table(n1, "?per_page=2&page=2")
        self.assertEqual(([(r["topic"], r["key"]) for r in p1["results"]],
                          [(r["topic"], r["key"]) for r in p2["results"]], p2["total"]),
                         ([("cf", None), ("cf", "k1")], [("cf", "k2")], 3))
        self.assertEqual(n1.http_get("/cluster/feeds?page=0")[0], 400)
        # A feed released everywhere leaves the table.
        b.close()
        wait_until(lambda: rows(table(n1)).get(("cf", "k2")) is None, timeout=10, what="cf/k2 gone")
        self.assertEqual(rows(table(n1))[("cf", "k1")]["count"], 1)
        # Redis down: 503 with the reason, not a stale table.
        c.redis.down()
        wait_until(lambda: n1.http_get("/cluster/feeds")[0] == 503, timeout=10, what="503 while Redis is down")
        self.assertIn("unreachable", json.loads(n1.http_get("/cluster/feeds")[1])["error"])

    def test_a_single_node_lists_its_own(self):
        k = self.mock_kafka({"solo": 1})
        n = self.node(k.bootstrap)
        c = self.client(n)
        c.subscribe("solo", "x")
        code, body = n.http_get("/cluster/feeds")
        self.assertEqual(code, 200, body)
        t = json.loads(body)
        self.assertEqual([(r["topic"], r["key"], r["count"]) for r in t["results"]], [("solo", "x", 1)])
        self.assertEqual(t["results"][0]["owner"], n.stats()["node_id"])
