#!/usr/bin/env python3
"""demand-producer.py -- an example upstream: fills a feed's topic through subway only while the feed is demanded.

It follows the node's demand events (README "Demand events") on the Kafka
topic the node writes them to (--demand-topic), read through subway with the
Python client from the beginning, so feeds demanded before it started are
found by replaying their last event. For every demanded feed whose topic
matches --topics (a glob) it publishes, through subway, one record every
--interval seconds until the feed is released: for a feed TOPIC/KEY under
KEY, for the every-key feed TOPIC/* under keys r1, r2, ... Each value is JSON
{"feed", "seq", "ts" (ms), "text"}, the text a fake search result about the
topic's name past the glob's fixed prefix ("cats" in search.cats).

    bin/subway --dev --demand-topic subway.demand --free-topic 'search.*'
    deploy/examples/demand-producer.py --subway 127.0.0.1:7700 --topics 'search.*'

Prints "ready" once it has caught up with the events, then "producing FEED"
and "stopped FEED" as they come. Needs the Python client: pip install
./proto/python, or PYTHONPATH=proto/python as make's example targets set.
"""

import argparse
import asyncio
import fnmatch
import json
import random
import sys
import time
from typing import Dict, Optional, Tuple

import program
import subway
from subway import Live, Record, Start

WORDS = ("fresh", "classic", "rare", "popular", "local", "vintage", "tiny", "giant", "quiet", "famous")
THINGS = ("guide", "photos", "forum thread", "shop", "map", "video", "recipe", "review", "news", "FAQ")


def subject(topic: str, glob: str) -> str:
    """What a feed's topic is about: the topic past the glob's fixed prefix."""
    cut = min([i for i, ch in enumerate(glob) if ch in "*?["] or [len(glob)])
    prefix = glob[:cut]
    return topic[len(prefix):] if topic.startswith(prefix) and len(topic) > len(prefix) else topic


def fake_result(about: str, seq: int, rnd: random.Random) -> str:
    """A made-up search result line that mentions `about`."""
    return "%s %s %s #%d" % (rnd.choice(WORDS).capitalize(), about, rnd.choice(THINGS), seq)


async def feed(c: subway.AsyncClient, feed_name: str, topic: str, key: Optional[str], about: str,
               interval: float, stop: asyncio.Event) -> None:
    """Publishes the feed's records until stop is set (or the node refuses
    one). Each is acknowledged before the next, so none is in flight once it returns."""
    rnd = random.Random(feed_name)
    seq = 0
    while not stop.is_set():
        seq += 1
        value = {"feed": feed_name, "seq": seq, "ts": int(time.time() * 1000), "text": fake_result(about, seq, rnd)}
        try:
            await c.publish(topic, key if key is not None else "r%d" % seq, json.dumps(value), timeout=10)
        except subway.SubwayError as e:
            print("demand-producer: publish to %s: %s: %s" % (feed_name, e.name, e.text), file=sys.stderr, flush=True)
            return
        try:
            await asyncio.wait_for(stop.wait(), interval)   # the pace of the fake source, or the stop
        except asyncio.TimeoutError:
            pass


async def run(args: argparse.Namespace) -> None:
    feeders: Dict[str, Tuple[asyncio.Task, asyncio.Event]] = {}
    demanded: Dict[str, dict] = {}      # feed -> its last "demand" event, while catching up
    live = False
    async with subway.connect(args.subway, client_name="demand-producer") as c:

        def start(ev: dict) -> None:
            name = ev["feed"]
            if name in feeders or not fnmatch.fnmatchcase(ev["topic"], args.topics):
                return
            halt = asyncio.Event()
            feeders[name] = (asyncio.ensure_future(
                feed(c, name, ev["topic"], ev["key"], subject(ev["topic"], args.topics), args.interval, halt)), halt)
            print("producing %s" % name, flush=True)

        async def stop(name: str) -> None:
            f = feeders.pop(name, None)
            if f is not None:
                f[1].set()
                await f[0]              # its last record acknowledged: nothing more will land
                print("stopped %s" % name, flush=True)

        events = c.subscribe(args.demand_topic, "*", start=Start.beginning(), live_marker=True)
        async for item in events:
            if isinstance(item, Live) and not live:
                live = True
                for ev in demanded.values():
                    start(ev)
                demanded.clear()
                print("ready", flush=True)
            if not isinstance(item, Record) or item.value is None:
                continue
            ev = json.loads(item.value)
            if not live:
                if ev["event"] == "demand":
                    demanded[ev["feed"]] = ev
                else:
                    demanded.pop(ev["feed"], None)
            elif ev["event"] == "demand":
                start(ev)
            elif ev["event"] == "release":
                await stop(ev["feed"])


def main() -> int:
    ap = program.parser(__doc__)
    ap.add_argument("--demand-topic", default="subway.demand", help="the nodes' --demand-topic")
    ap.add_argument("--topics", default="*", help="glob of topics this producer fills")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between records of one feed")
    return program.run("demand-producer", run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
