#!/usr/bin/env python3
"""run.py -- runs one example with one command: a local subway node (and Redis) for it, then its programs, until Ctrl-C.

    python3 deploy/examples/run.py search|csv|uniques|fanout [--bin bin] [--http-port 8080]

make example-search (example-csv, example-uniques, example-fanout) runs it
after building. The node is `subway --dev` (embedded mock Kafka) on a free
port; "search" adds a redis-server for the feed counts. Every program gets
PYTHONPATH=proto/python, so the Python client need not be installed. Logs
go to a temporary directory, printed at the start; Ctrl-C stops everything.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
READY_S = 30.0


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The processes of one run, stopped in reverse order at the end."""

    def __init__(self, bin_dir: str) -> None:
        self.bin = os.path.abspath(bin_dir)
        self.tmp = tempfile.mkdtemp(prefix="subway-example-")
        self.procs: List[subprocess.Popen] = []
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (os.path.join(REPO, "proto", "python"), os.environ.get("PYTHONPATH")) if p))

    def start(self, name: str, argv: List[str], show: bool = False) -> subprocess.Popen:
        """Starts argv, its output to TMP/NAME.log (and the terminal too when show)."""
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        out = None if show else log
        p = subprocess.Popen(argv, stdout=out, stderr=log, env=self.env, start_new_session=True)
        self.procs.append(p)
        return p

    def wait_log(self, name: str, pattern: str, proc: subprocess.Popen) -> "re.Match[str]":
        """Waits (polling, bounded) for a line of TMP/NAME.log matching pattern."""
        deadline = time.monotonic() + READY_S
        path = os.path.join(self.tmp, name + ".log")
        while time.monotonic() < deadline:
            with open(path, errors="replace") as f:
                m = re.search(pattern, f.read(), re.M)
            if m:
                return m
            if proc.poll() is not None:
                raise SystemExit("run: %s exited (%s); see %s" % (name, proc.returncode, path))
            time.sleep(0.1)
        raise SystemExit("run: %s did not log %r within %.0f s; see %s" % (name, pattern, READY_S, path))

    def redis(self) -> str:
        """Starts a redis-server of its own; returns HOST:PORT."""
        port = free_port()
        p = self.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"])
        self.wait_log("redis", r"Ready to accept connections", p)
        return "127.0.0.1:%d" % port

    def node(self, args: List[str]) -> str:
        """Starts subway --dev ARGS on a free port; returns its HOST:PORT."""
        port = free_port()
        p = self.start("subway", [os.path.join(self.bin, "subway"), "--dev", "--listen", "127.0.0.1:%d" % port,
                                  "--admin", "127.0.0.1:%d" % free_port()] + args)
        self.wait_log("subway", r"^subway: listening on ", p)
        return "127.0.0.1:%d" % port

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def py(*parts: str) -> List[str]:
    return [sys.executable, os.path.join(HERE, *parts)]


def run(example: str, st: Stack, http_port: int) -> Optional[subprocess.Popen]:
    """Starts the example's programs; returns the one to wait for (None: wait for Ctrl-C)."""
    if example == "search":
        redis = st.redis()
        node = st.node(["--redis", redis, "--node-id", "n1", "--free-topic", "search.*", "--free-topic-grace-ms",
                        "10000", "--linger-ms", "1000", "--demand-topic", "subway.demand"])
        st.start("demand-producer", py("demand-producer.py") + ["--subway", node, "--topics", "search.*"])
        st.start("search", py("search", "app.py") + ["--subway", node, "--port", str(http_port)])
        print("search: open http://127.0.0.1:%d/ (redis-cli -p %s --scan --pattern 'subway:feed:*:count')"
              % (http_port, redis.rsplit(":", 1)[1]))
        return None
    if example == "csv":
        node = st.node([])
        out = os.path.abspath("abalone-by-sex")
        header = subprocess.run(py("csv-split", "abalone.py") + ["--header"], capture_output=True, text=True,
                                env=st.env, check=True).stdout.strip()
        cli = st.start("subway-cli", [os.path.join(st.bin, "subway-cli"), "-s", node, "-v", "sub", "abalone", "*",
                                      "--split-by-key", out, "--header", header])
        st.wait_log("subway-cli", r"^subscribed abalone/\*", cli)
        print("csv: rows go to %s/{M,F,I}, one file per sex; try: tail -f %s/M" % (out, out))
        st.start("abalone", py("csv-split", "abalone.py") + ["--subway", node, "--rows", "300", "--interval", "0.05"])
        return None
    if example == "uniques":
        node = st.node([])
        st.start("uniques", py("unique-users", "uniques.py") + ["--subway", node, "--lateness", "10"])
        st.start("events", py("unique-users", "events.py") + ["--subway", node])
        print("uniques: counts of topic uniques.counts, one per minute:")
        return st.start("counts", [os.path.join(st.bin, "subway-cli"), "-s", node, "sub", "uniques.counts", "*",
                                   "-o", "beginning"], show=True)
    if example == "fanout":
        node = st.node([])
        st.start("events", py("unique-users", "events.py") + ["--subway", node, "--users", "5"])
        st.start("gateway", py("fanout", "gateway.py") + ["--subway", node, "--port", str(http_port)])
        print("fanout: open http://127.0.0.1:%d/ and ask for events/u1 (or events/*)" % http_port)
        return None
    raise SystemExit("run: no example %r (search, csv, uniques, fanout)" % example)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("example", choices=("search", "csv", "uniques", "fanout"))
    ap.add_argument("--bin", default=os.path.join(REPO, "bin"), help="holds subway and subway-cli")
    ap.add_argument("--http-port", type=int, default=8080, help="search and fanout: the web page's port")
    args = ap.parse_args()
    st = Stack(args.bin)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt          # SIGTERM stops everything as Ctrl-C does

    signal.signal(signal.SIGTERM, on_term)
    print("run: logs in %s; Ctrl-C stops" % st.tmp)
    try:
        last = run(args.example, st, args.http_port)
        if last is not None:
            last.wait()
        else:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        st.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
