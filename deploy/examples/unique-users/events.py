#!/usr/bin/env python3
"""events.py -- publishes fake {uid, ts} page-view events through subway, keyed by uid, some of them late."""

import argparse
import asyncio
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # program.py

import program  # noqa: E402
import subway  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    rnd = random.Random(args.seed)
    async with subway.connect(args.subway, client_name="events") as c:
        seq = 0
        while args.count == 0 or seq < args.count:
            seq += 1
            uid = "u%d" % rnd.randint(1, args.users)
            ts = int(time.time() * 1000)
            if rnd.random() < args.late:
                ts -= rnd.randint(5_000, 90_000)      # a phone that was offline: some within lateness, some not
            await c.publish(args.topic, uid, json.dumps({"uid": uid, "ts": ts, "seq": seq}))
            await asyncio.sleep(rnd.expovariate(args.rate))   # the pace of the fake traffic


def main() -> int:
    ap = program.parser(__doc__)
    ap.add_argument("--topic", default="events")
    ap.add_argument("--users", type=int, default=50, help="uids u1..uN")
    ap.add_argument("--rate", type=float, default=5.0, help="events per second, on average")
    ap.add_argument("--late", type=float, default=0.05, help="share of events sent late")
    ap.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    ap.add_argument("--seed", type=int, default=None)
    return program.run("events", run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
