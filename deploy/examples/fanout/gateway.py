#!/usr/bin/env python3
"""gateway.py -- selective fan-out over WebSocket: a browser sends topic/key, gets that feed's records, through one subway connection."""

import asyncio
import json
import os
import sys
from typing import Dict, Set

from aiohttp import WSMsgType, web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # program.py

import program  # noqa: E402
import subway  # noqa: E402
import webserve  # noqa: E402
from subway import Dropped, Record  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLOSE_TOO_SLOW = 1008        # WebSocket "policy violation": the reason text says which


def record_json(r: Record) -> str:
    """A record as the browser gets it (key and value as text, invalid UTF-8 replaced)."""
    return json.dumps({"topic": r.topic, "key": None if r.key is None else r.key.decode("utf-8", "replace"),
                       "partition": r.partition, "offset": r.offset, "timestamp": r.timestamp,
                       "value": None if r.value is None else r.value.decode("utf-8", "replace")})


class Socket:
    """One browser, and a bounded queue of frames to send it.

    Nothing here may block on a browser: feeds are shared by every socket
    (and by one subway connection), so a record is queued without waiting,
    and a socket whose queue is full (the browser stopped reading) is closed
    with code 1008 and reason "too slow", so the others never wait for it."""

    def __init__(self, ws: web.WebSocketResponse, max_queue: int, peer: str, close_timeout: float) -> None:
        self.ws = ws
        self.peer = peer
        self.close_timeout = close_timeout
        self.queue: "asyncio.Queue[str]" = asyncio.Queue(max_queue)
        self.feeds: Set[str] = set()
        self.sender = asyncio.ensure_future(self._send())
        self.closing = False

    def offer(self, frame: str) -> None:
        """Queues a frame for the browser, or drops the browser when its queue is full."""
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.closing = True
            n = self.queue.qsize()
            print("gateway: dropping slow client %s: %d frames unsent" % (self.peer, n), file=sys.stderr, flush=True)
            asyncio.ensure_future(self.close(CLOSE_TOO_SLOW, "too slow: %d frames unsent" % n))

    async def _send(self) -> None:
        while True:
            frame = await self.queue.get()
            await self.ws.send_str(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the socket, waiting at most close_timeout for the browser
        (then the connection is cut). Its feeds are left by the handler."""
        self.closing = True
        self.sender.cancel()
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), self.close_timeout)
        except asyncio.TimeoutError:
            pass                # close() gave up and closed the transport


class Feed:
    """One subway subscription, shared by every socket that asked for its topic/key."""

    def __init__(self, spec: str, sub: subway.Subscription) -> None:
        self.spec = spec
        self.sub = sub
        self.sockets: Set[Socket] = set()
        self.subscribed = ""                # the frame telling a socket it is subscribed, once known
        self.task = asyncio.ensure_future(self._pump())

    def join(self, s: Socket) -> None:
        self.sockets.add(s)
        if self.subscribed:
            s.offer(self.subscribed)

    async def _pump(self) -> None:
        try:
            await self.sub.ready()
            self.subscribed = json.dumps({"subscribed": self.spec, "partitions": self.sub.partitions})
            for s in list(self.sockets):
                s.offer(self.subscribed)
            async for item in self.sub:
                if isinstance(item, Record):
                    frame = record_json(item)           # encoded once for every socket
                elif isinstance(item, Dropped):
                    frame = json.dumps({"dropped": item.count, "feed": self.spec})
                else:
                    continue
                for s in list(self.sockets):
                    s.offer(frame)
                # Let the senders run: a burst read at once must not fill a
                # fast browser's queue before its sender had a turn.
                await asyncio.sleep(0)
        except subway.SubwayError as e:
            for s in list(self.sockets):
                s.offer(json.dumps({"error": "%s: %s: %s" % (self.spec, e.name, e.text)}))


class Feeds:
    """The feeds in use: subscribed at a socket's first interest, unsubscribed when the last leaves."""

    def __init__(self, client: subway.AsyncClient) -> None:
        self.client = client
        self.feeds: Dict[str, Feed] = {}

    def join(self, s: Socket, spec: str) -> None:
        """Adds socket s to feed "topic/key" (key * : every key)."""
        topic, sep, key = spec.strip().partition("/")
        if not topic or not sep:
            s.offer(json.dumps({"error": "want topic/key, not %r" % spec}))
            return
        spec = topic + "/" + key
        f = self.feeds.get(spec)
        if f is None:
            f = self.feeds[spec] = Feed(spec, self.client.subscribe(topic, None if key == "*" else key))
        f.join(s)
        s.feeds.add(spec)

    async def leave_all(self, s: Socket) -> None:
        """Takes s out of its feeds; a feed nobody wants any more is unsubscribed."""
        for spec in s.feeds:
            f = self.feeds.get(spec)
            if f is None:
                continue
            f.sockets.discard(s)
            if not f.sockets:
                del self.feeds[spec]
                f.task.cancel()
                try:
                    await f.sub.unsubscribe()
                except subway.SubwayError:
                    pass        # the client is closing or reconnecting: the node drops it anyway
        s.feeds.clear()


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    ws = web.WebSocketResponse(max_msg_size=4096, heartbeat=30)
    await ws.prepare(request)
    peer = "%s:%s" % (request.transport.get_extra_info("peername") or ("?", 0))[:2] if request.transport else "?"
    s = Socket(ws, app["max_queue"], peer, app["close_timeout"])
    feeds: Feeds = app["feeds"]
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and not s.closing:
                feeds.join(s, msg.data)
    finally:
        await feeds.leave_all(s)
        if not s.closing:
            await s.close()
    return ws


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(HERE, "index.html"))


async def serve(addr: str, host: str, port: int, max_queue: int, close_timeout: float) -> None:
    app = web.Application()
    app["max_queue"] = max_queue
    app["close_timeout"] = close_timeout
    app.router.add_get("/", index)
    app.router.add_get("/ws", ws_handler)
    async with subway.connect(addr, client_name="fanout-gateway") as c:
        app["feeds"] = Feeds(c)
        await webserve.serve("gateway", app, host, port)


def main() -> int:
    ap = program.parser(__doc__)
    webserve.add_options(ap, 8081)
    ap.add_argument("--max-queue", type=int, default=1000, help="frames a browser may have unsent before it is dropped")
    ap.add_argument("--close-timeout", type=float, default=5.0, help="seconds a dropped browser gets to take the close")
    args = ap.parse_args()
    return program.run("gateway", serve(args.subway, args.host, args.port, args.max_queue, args.close_timeout))


if __name__ == "__main__":
    sys.exit(main())
