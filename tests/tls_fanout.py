#!/usr/bin/env python3
"""tls_fanout.py -- fan-out over TLS against plain, on one machine: records/s delivered and node CPU per million deliveries.

    python3 tests/tls_fanout.py --bin bin [--subs 100] [--records 10000] [--size 100] [--runs 2]

One mock Kafka (tests/mock_kafka), one node with --listen and --tls-listen
(a throwaway certificate), SUBS subway-cli subscribers of one feed (all plain,
then all TLS), and RECORDS records of SIZE bytes produced with kcat once
every subscriber is in. Delivered/s is SUBS x RECORDS over the time from the
produce to the last subscriber's exit (-c RECORDS); node CPU is its
utime+stime over the same span, from /proc. The subscribers (and their
decryption) share the machine with the node, so delivered/s is the
machine's figure; CPU per million deliveries is the node's own.

A standalone measurement, not a test: it asserts nothing but that every
subscriber got every record. (tests/bench/ is the benchmark suite; this can
move there.)
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
import harness  # noqa: E402


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(node, kafka, tls, subs, records, size, topic, certs):
    addr = "localhost:%d" % (node.tls_port if tls else node.port)
    extra = ["--ca", certs["ca"]] if tls else []
    procs = [subprocess.Popen(harness.cli_argv(addr, *extra, "-c", records, "-f", "%o\n", "sub", topic, "*"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(subs)]
    node.wait_stats(lambda st: st["subscriptions"] == subs, timeout=60, what="%d subscriptions" % subs)
    value = "v" * size
    c0, t0 = cpu_s(node.proc.pid), time.monotonic()
    harness.produce(kafka.bootstrap, topic, [("k%d" % (i % 100), value) for i in range(records)])
    for p in procs:
        p.wait(timeout=600)
        if p.returncode != 0:
            raise SystemExit("a subscriber failed: %s" % p.stderr.read().decode())
    t1, c1 = time.monotonic(), cpu_s(node.proc.pid)
    st = node.wait_stats(lambda st: st["subscriptions"] == 0, timeout=30, what="subscribers gone")
    if st["counters"]["dropped"]:
        raise SystemExit("records were dropped: the figures would not compare")
    n = subs * records
    return n / (t1 - t0), (c1 - c0) / (n / 1e6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--subs", type=int, default=100)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    harness.configure(a.bin)
    certs = harness.make_tls_certs()
    kafka = harness.MockKafka({"t%d" % i: 1 for i in range(2 * a.runs)})
    tls_port = harness.free_port()
    node = harness.Node(kafka.bootstrap, ["--tls-listen", "127.0.0.1:%d" % tls_port, "--tls-cert-file", certs["cert"],
                                          "--tls-key-file", certs["key"], "--max-conns", str(a.subs + 10),
                                          # nothing dropped or closed: every record reaches every subscriber
                                          "--out-soft-limit", str(64 << 20), "--out-hard-limit", str(1 << 30),
                                          "--slow-timeout-ms", "600000", "--heartbeat-timeout-ms", "600000"])
    node.tls_port = tls_port
    try:
        res = {False: [], True: []}
        for r in range(a.runs):
            for tls in (False, True):
                res[tls].append(one_run(node, kafka, tls, a.subs, a.records, a.size, "t%d" % (2 * r + tls), certs))
                rate, cpu = res[tls][-1]
                print("%-5s run %d: %9.0f deliveries/s, node %.2f CPU-s per million" % (
                    "tls" if tls else "plain", r + 1, rate, cpu), flush=True)
        best = {t: (max(x[0] for x in res[t]), min(x[1] for x in res[t])) for t in res}
        print("best: plain %.0f/s %.2f CPU-s/M; tls %.0f/s %.2f CPU-s/M; tls/plain: rate %.2f, node CPU %.2f" % (
            best[False][0], best[False][1], best[True][0], best[True][1],
            best[True][0] / best[False][0], best[True][1] / best[False][1]))
    finally:
        node.stop()
        kafka.stop()


if __name__ == "__main__":
    main()
