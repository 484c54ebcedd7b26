#!/usr/bin/env python3
"""uniques.py -- reads {uid, ts} events through subway, publishes distinct users per minute back through subway."""

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # program.py

import program  # noqa: E402
import subway  # noqa: E402
from subway import Record, Start  # noqa: E402
from windows import Count, MinuteWindows, Output  # noqa: E402


def iso_minute(start_ms: int) -> str:
    return datetime.datetime.fromtimestamp(start_ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def encode(o: Output) -> "tuple[str, str]":
    """(key, JSON value) of an output record: key "minute" for counts, "late" for too-late events."""
    if isinstance(o, Count):
        return "minute", json.dumps({"minute": iso_minute(o.start_ms), "start_ms": o.start_ms, "users": o.users,
                                     "late": o.late})
    return "late", json.dumps({"uid": o.uid, "ts": o.ts, "minute": iso_minute(o.start_ms),
                               "watermark": o.watermark})


async def run(args: argparse.Namespace) -> None:
    w = MinuteWindows(int(args.lateness * 1000))
    start = Start.beginning() if args.start == "beginning" else None
    async with subway.connect(args.subway, client_name="uniques") as c:
        events = c.subscribe(args.topic, "*", start=start)
        await events.ready()
        print("subscribed %s/*" % args.topic, flush=True)
        bad = 0
        it = events.__aiter__()
        while True:
            item: Optional[object]
            try:
                item = await asyncio.wait_for(it.__anext__(), args.idle) if args.idle else await it.__anext__()
            except asyncio.TimeoutError:
                # No event for --idle seconds: let wall-clock time close minutes, so a quiet stream still says 0.
                outs = w.advance(int(time.time() * 1000) - w.lateness_ms)
            except StopAsyncIteration:
                return
            else:
                if not isinstance(item, Record):
                    continue                      # a Dropped marker: nothing to count
                try:
                    ev = json.loads(item.value or b"")
                    uid, ts = str(ev["uid"]), int(ev["ts"])
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    print("uniques: skipped a malformed event (%d so far): %r" % (bad, item.value), file=sys.stderr)
                    continue
                outs = w.add(uid, ts)
            for o in outs:
                key, value = encode(o)
                await c.publish(args.out_topic, key, value)    # in order: dashboards see minutes in sequence
                print("%s\t%s" % (key, value), flush=True)


def main() -> int:
    ap = program.parser(__doc__)
    ap.add_argument("--topic", default="events", help="events, JSON {\"uid\": ..., \"ts\": ms since the epoch}")
    ap.add_argument("--out-topic", default="uniques.counts", help="where the counts go (keys minute and late)")
    ap.add_argument("--lateness", type=float, default=10.0, help="seconds an event may come after a later one")
    ap.add_argument("--start", choices=("beginning", "live"), default="beginning", help="where to read --topic from")
    ap.add_argument("--idle", type=float, default=0.0,
                    help="after this many seconds without events, close minutes by the wall clock (0: never)")
    return program.run("uniques", run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
