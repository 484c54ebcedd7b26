#!/usr/bin/env python3
"""demand-producer.py -- an example upstream: produces a feed's records only while subway says it is demanded.

It listens to subway's demand events on the Redis channel subway:demand
(JSON: {"event": "demand"|"release", "feed": "topic/key", "topic", "key",
"node", "ts_ms"}), and for every demanded feed whose topic matches --topics
(a glob), runs a kcat producer writing one record for that key every
--interval seconds, until the feed is released. Feeds demanded before it
started are picked up from the subway:feed:*:count keys.

    deploy/examples/demand-producer.py --redis 127.0.0.1:6390 --kafka 127.0.0.1:9092 --topics 'search.*'

Standard library only; it speaks RESP itself.
"""

import argparse
import fnmatch
import json
import socket
import subprocess
import sys
import threading
import time


def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Resp:
    """Reads RESP replies from a socket."""

    def __init__(self, sock):
        self.f = sock.makefile("rb")

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError("bad RESP: %r" % line)


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)))


class Feeder:
    """One kcat producer for one key, fed from a thread."""

    def __init__(self, kafka, topic, key, interval):
        self.topic, self.key = topic, key
        self.stop = threading.Event()
        self.proc = subprocess.Popen(
            ["kcat", "-P", "-b", kafka, "-t", topic, "-K", "\t", "-X", "partitioner=murmur2_random",
             "-X", "linger.ms=5"], stdin=subprocess.PIPE)
        self.thread = threading.Thread(target=self.run, args=(interval,), daemon=True)
        self.thread.start()

    def run(self, interval):
        seq = 0
        while not self.stop.is_set():
            seq += 1
            line = "%s\t%s\n" % (self.key, json.dumps({"key": self.key, "seq": seq, "ts": time.time()}))
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            self.stop.wait(interval)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.proc.stdin.close()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", default="127.0.0.1:6390")
    ap.add_argument("--kafka", required=True)
    ap.add_argument("--topics", default="*", help="glob of topics this producer fills")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between records of one key")
    args = ap.parse_args()

    feeders = {}

    def start(feed, topic, key):
        if feed in feeders or key is None or not fnmatch.fnmatchcase(topic, args.topics):
            return
        feeders[feed] = Feeder(args.kafka, topic, key, args.interval)
        print("producing %s" % feed, flush=True)

    def stop(feed):
        f = feeders.pop(feed, None)
        if f:
            f.close()
            print("stopped %s" % feed, flush=True)

    sub = connect(args.redis)
    sub.sendall(resp_command("SUBSCRIBE", "subway:demand"))
    reader = Resp(sub)
    reader.read()  # subscribe confirmation: events from here on reach us

    # Feeds demanded before we listened.
    cmd = connect(args.redis)
    cr = Resp(cmd)
    cursor = b"0"
    while True:
        cmd.sendall(resp_command("SCAN", cursor, "MATCH", "subway:feed:*:count", "COUNT", "1000"))
        cursor, keys = cr.read()
        for k in keys:
            name = k[len(b"subway:feed:{"):-len(b"}:count")].decode(errors="replace")
            topic, _, key = name.partition("/")
            start(name, topic, None if key == "*" else key)
        if cursor == b"0":
            break
    cmd.close()
    print("ready", flush=True)

    try:
        while True:
            msg = reader.read()
            if not isinstance(msg, list) or msg[0] != b"message":
                continue
            ev = json.loads(msg[2])
            if ev["event"] == "demand":
                start(ev["feed"], ev["topic"], ev["key"])
            elif ev["event"] == "release":
                stop(ev["feed"])
    except KeyboardInterrupt:
        pass
    finally:
        for feed in list(feeders):
            stop(feed)


if __name__ == "__main__":
    sys.exit(main())
