#!/usr/bin/env python3
"""app.py -- free-topic search in the browser: each tab's term is a subway free topic, its results streamed to the page over SSE."""

import asyncio
import json
import os
import re
import sys
from typing import Optional

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # program.py

import program  # noqa: E402
import subway  # noqa: E402
import webserve  # noqa: E402
from subway import Dropped, Record, Start  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOPIC_PREFIX = "search."
MAX_TERM = 80


def topic_for(term: str) -> Optional[str]:
    """The free topic of a search term: "search." + the term lower-cased,
    runs of anything but a-z 0-9 made one "-" (Kafka's topic names allow
    few characters); None for a term with nothing left."""
    slug = re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")[:MAX_TERM].strip("-")
    return TOPIC_PREFIX + slug if slug else None


def sse(event: str, data: object) -> bytes:
    """One Server-Sent Event."""
    return ("event: %s\ndata: %s\n\n" % (event, json.dumps(data))).encode()


async def results(request: web.Request) -> web.StreamResponse:
    """GET /results?q=TERM: the term's results as Server-Sent Events, for as long as the tab stays.

    Each tab gets a subway connection of its own, so the node counts one
    subscriber per tab on the term's feed (shared by all of them, and by
    every other node's subscribers); the tab's leaving is its release."""
    topic = topic_for(request.query.get("q", ""))
    if topic is None:
        raise web.HTTPBadRequest(text="q: a search term with a letter or digit\n")
    app = request.app
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    async with subway.connect(app["subway"], client_name="search-tab") as c:
        sub = c.subscribe(topic, "*", start=Start.last(app["backlog"]))
        try:
            await sub.ready()
        except subway.SubwayError as e:
            await resp.write(sse("failed", {"topic": topic, "error": "%s: %s" % (e.name, e.text)}))
            return resp
        await resp.write(sse("subscribed", {"topic": topic}))
        it = sub.__aiter__()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(it.__anext__(), app["ping"])
                except asyncio.TimeoutError:
                    await resp.write(b": ping\n\n")     # a closed tab shows as a failed write
                    continue
                if isinstance(item, Record) and item.value is not None:
                    await resp.write(sse("result", json.loads(item.value)))
                elif isinstance(item, Dropped):
                    await resp.write(sse("dropped", {"count": item.count}))
        except (ConnectionResetError, StopAsyncIteration):
            pass                                          # the tab went, or the client closed
    return resp


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(HERE, "index.html"))


async def serve(addr: str, host: str, port: int, backlog: int, ping: float) -> None:
    app = web.Application()
    app["subway"], app["backlog"], app["ping"] = addr, backlog, ping
    app.router.add_get("/", index)
    app.router.add_get("/results", results)
    await webserve.serve("search", app, host, port)


def main() -> int:
    ap = program.parser(__doc__)
    webserve.add_options(ap, 8080)
    ap.add_argument("--backlog", type=int, default=20, help="results already found that a new tab gets, per partition")
    ap.add_argument("--ping", type=float, default=1.0, help="seconds between keep-alives, which notice closed tabs")
    args = ap.parse_args()
    return program.run("search", serve(args.subway, args.host, args.port, args.backlog, args.ping))


if __name__ == "__main__":
    sys.exit(main())
