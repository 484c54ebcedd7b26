"""aio.py -- the asyncio client: one connection to a node, subscriptions as async iterators, publish, heartbeats, reconnect and resume."""

# The shape follows libsubway (proto/client*.c): subscriptions are the
# client's own objects and outlive connections; the node's feed handles
# are looked up per connection; per subscription and partition the client
# remembers the offset of the next record (after each MESSAGE, or LIVE's
# position), and after a loss it reconnects with full-jitter backoff and
# subscribes again from there with start POSITIONS (PROTOCOL.md 5.8).

import asyncio
import collections
import random
import ssl as _ssl
from typing import Any, Awaitable, Callable, Deque, Dict, List, Optional, Tuple, Union

from . import codec
from .errors import ClientClosed, ConnectionLost, ErrorCode, ProtocolError, ServerError, SubwayError
from .records import Dropped, Item, Live, PubAck, Record, Start

DEFAULT_CLIENT_NAME = "subway-py"
HEARTBEAT_MISSES = 3          # silence tolerated, in heartbeat intervals (PROTOCOL.md 5.2)
# Refusals a node may change its mind about: resubscribed after a backoff.
RETRIED_CODES = (ErrorCode.UNAVAILABLE, ErrorCode.SHUTTING_DOWN, ErrorCode.KAFKA, ErrorCode.INTERNAL)

DroppedCallback = Callable[["Subscription", int], Any]
ReconnectCallback = Callable[[str, Optional[SubwayError], float], Any]


def backoff(attempt: int, base: float, cap: float, rnd: Callable[[], float] = random.random) -> float:
    """The delay in seconds before reconnect attempt n (1, 2, ...): uniform
    in [0, min(cap, base * 2^(n-1))], "full jitter", as libsubway."""
    ceiling = min(cap, base * (2 ** min(attempt - 1, 32)))
    return rnd() * ceiling


def split_addr(addr: str) -> Tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; SubwayError ARG otherwise."""
    host, sep, port = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SubwayError(ErrorCode.ARG, "bad address %r: want HOST:PORT" % (addr,))
    return host, int(port)


# ================================================================ subscriptions


class Subscription:
    """One subscription to topic/key (key None: every key), made by
    AsyncClient.subscribe(). Iterate it for its items:

        async for item in sub:   # Record; Dropped marks a gap; Live if live_marker=True

    It lives across reconnects. Refused by the node, it raises the
    ServerError from iteration (and from ready()). Iteration ends when it is
    unsubscribed or the client is closed, and raises ConnectionLost when
    the connection is lost for good (reconnect off)."""

    def __init__(self, client: "AsyncClient", sub_id: int, topic: str, key: Optional[bytes],
                 start: Optional[Start], on_dropped: Optional[DroppedCallback], live_marker: bool,
                 max_queue: int):
        self._c = client
        self.id = sub_id                   # the client's own number, stable across reconnects
        self.topic = topic
        self.key = key
        self.start = start
        self.partitions: List[int] = []    # what the node reads for it (latest SUBSCRIBED)
        self.positions: Dict[int, int] = {}  # partition -> offset of the next record
        self.live = False                  # LIVE came on the current connection
        self.handle: Optional[int] = None  # the node's feed handle on this connection
        self._on_dropped = on_dropped
        self._live_marker = live_marker
        self._max_queue = max(1, max_queue)
        self._items: Deque[Item] = collections.deque()
        self._wake = asyncio.Event()
        self._ready = client._loop.create_future()   # SUBSCRIBED (or the refusal), once
        self._live_ev = asyncio.Event()
        self._end: Optional[BaseException] = None    # StopAsyncIteration or the error that ended it
        self._answered = False             # a SUBSCRIBED ever came
        self._had_live = False             # LIVE ever came: positions name every partition
        self._skip_seen = False            # resumed with the original start: skip what was delivered
        self._req_id = 0                   # the SUBSCRIBE awaiting its answer, or 0
        self._leaving = False              # unsubscribe sent: its records are ignored

    # ---- for users

    async def ready(self) -> "Subscription":
        """Waits for the node's SUBSCRIBED (partitions set); raises its refusal."""
        await asyncio.shield(self._ready)
        return self

    async def wait_live(self) -> Dict[int, int]:
        """Waits until the subscription has caught up (LIVE); returns its positions."""
        await self.ready()
        while not self.live:
            if self._end is not None:
                raise self._end if not isinstance(self._end, StopAsyncIteration) else ClientClosed("ended")
            await self._live_ev.wait()
            self._live_ev.clear()
        return dict(self.positions)

    async def unsubscribe(self) -> None:
        """Ends the subscription: the node stops its records, iteration ends."""
        await self._c._unsubscribe(self)

    aclose = unsubscribe

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Item:
        while not self._items:
            if self._end is not None:
                raise self._end
            self._wake.clear()
            await self._wake.wait()
        item = self._items.popleft()
        self._c._drained(self)
        return item

    async def next_batch(self) -> List[Item]:
        """Every item queued now (at least one, waiting for it): what the
        blocking client fetches per round trip."""
        while not self._items:
            if self._end is not None:
                raise self._end
            self._wake.clear()
            await self._wake.wait()
        items = list(self._items)
        self._items.clear()
        self._c._drained(self)
        return items

    def __repr__(self) -> str:
        return "<Subscription %d %s/%s%s>" % (self.id, self.topic, "*" if self.key is None else self.key,
                                              " live" if self.live else "")

    # ---- for the client

    def _push(self, item: Item) -> None:
        self._items.append(item)
        self._wake.set()

    def _finish(self, exc: BaseException) -> None:
        if self._end is None:
            self._end = exc
        if not self._ready.done():
            if isinstance(exc, StopAsyncIteration):
                self._ready.set_exception(ClientClosed("the subscription ended before SUBSCRIBED"))
            else:
                self._ready.set_exception(exc)
            self._ready.exception()   # retrieved: nobody has to await ready()
        self._wake.set()
        self._live_ev.set()

    def _full(self) -> bool:
        return len(self._items) >= self._max_queue


# ====================================================================== client


class _Wire(asyncio.Protocol):
    """The socket's events, handed to the client with the connection they belong to."""

    def __init__(self, client: "AsyncClient"):
        self.c = client
        self.transport: Optional[asyncio.Transport] = None
        self.decoder = codec.Decoder(client.max_frame)
        self.lost: "asyncio.Future[SubwayError]" = client._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.c._on_data(self, data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if exc is not None:
            self.c._conn_failed(self, ConnectionLost(ErrorCode.IO, "connection to %s: %s" % (self.c.addr, exc), exc))
        else:
            self.c._conn_failed(self, ConnectionLost(ErrorCode.EOF, "node %s closed the connection" % self.c.addr))


class AsyncClient:
    """A client of one subway node (or of a load balancer in front of
    several). Use `async with subway.connect(...) as c`, or
    `c = await subway.connect(...)` and `await c.close()`.

    After open(), node_id, version, heartbeat_ms and max_frame_out describe
    the node of the current connection. See connect() for the options."""

    def __init__(self, addr: str, *, token: Optional[str] = None, client_name: str = DEFAULT_CLIENT_NAME,
                 reconnect: bool = True, reconnect_base: float = 0.1, reconnect_max: float = 10.0,
                 timeout: float = 10.0, max_frame: int = codec.DEFAULT_MAX_MESSAGE,
                 on_dropped: Optional[DroppedCallback] = None, on_reconnect: Optional[ReconnectCallback] = None,
                 max_queue: int = 10000, ssl: Union[None, bool, _ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None):
        self.addr = addr
        self.host, self.port = split_addr(addr)
        # True: the system's CAs and the address's host name (asyncio checks both)
        self.ssl = _ssl.create_default_context() if ssl is True else (ssl or None)
        self.server_hostname = server_hostname if self.ssl is not None else None
        self.token = token
        self.client_name = client_name
        self.reconnect = reconnect
        self.reconnect_base = reconnect_base
        self.reconnect_max = reconnect_max
        self.timeout = timeout
        self.max_frame = max(int(max_frame), codec.MIN_MAX_FRAME)
        self.on_dropped = on_dropped
        self.on_reconnect = on_reconnect
        self.max_queue = max_queue
        self.node_id: Optional[str] = None
        self.version = 0
        self.heartbeat_ms = 0
        self.max_frame_out = codec.DEFAULT_MAX_FRAME   # the node's max_frame, from WELCOME
        self.client = ""                               # the token's sub as the node saw it (version 3)
        self.expires_ms = 0                            # when the token expires (ms since 1970), 0: never
        self.reconnects = 0                            # connections after the first
        self._loop = asyncio.get_running_loop()
        self._wire: Optional[_Wire] = None             # the current connection, WELCOME or not
        self._welcomed = asyncio.Event()               # the current connection is usable
        self._subs: Dict[int, Subscription] = {}
        self._handles: Dict[int, Subscription] = {}
        self._reqs: Dict[int, Any] = {}                # req_id -> Future (publish, unsubscribe) or Subscription
        self._next_req = 1
        self._next_sub = 1
        self._goaway = False
        self._goaway_text = ""
        self._conn_error: Optional[ServerError] = None
        self._paused = False                           # reading paused: a subscription's queue is full
        self._closed = False
        self._fatal: Optional[SubwayError] = None      # why the client stopped for good
        self._task: Optional[asyncio.Task] = None
        self._first: "asyncio.Future[None]" = self._loop.create_future()
        self._last_rx = 0.0
        self._watchdog: Optional[asyncio.TimerHandle] = None

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> "AsyncClient":
        """Connects and waits for WELCOME. The first connection's failure is
        raised (never retried: a wrong address shows at once)."""
        if self._task is None:
            self._task = self._loop.create_task(self._run())
        await asyncio.shield(self._first)
        return self

    def __await__(self):
        return self.open().__await__()

    async def __aenter__(self) -> "AsyncClient":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection; every subscription's iteration ends and
        requests still waiting fail with ClientClosed."""
        if self._closed:
            return
        self._closed = True
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.close()
        self._stop(ClientClosed())
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def closed(self) -> bool:
        return self._closed or self._fatal is not None

    # ------------------------------------------------------------ requests

    def subscribe(self, topic: str, key: Union[bytes, str, None], start: Optional[Start] = None, *,
                  on_dropped: Optional[DroppedCallback] = None, live_marker: bool = False,
                  max_queue: Optional[int] = None) -> Subscription:
        """Subscribes to topic/key (key None or "*": every key of the topic;
        a str key is UTF-8 encoded) from `start` (None: live, new records
        only). Returns at once; the SUBSCRIBE goes out now or on the next
        connection. Iterate the result for Records.

        DROPPED: by default a Dropped item in the stream, where the gap is;
        with on_dropped (here or on the client) that callback gets
        (subscription, count) instead. live_marker=True also yields a Live
        item when the subscription has caught up. max_queue bounds the
        items waiting to be read: past it the client stops reading the
        socket (the node then drops records, and says so with DROPPED)."""
        self._check_open()
        if isinstance(key, str):
            key = None if key == "*" else key.encode("utf-8")
        if start is not None and not isinstance(start, Start):
            raise SubwayError(ErrorCode.ARG, "start must be a subway.Start, not %r" % (start,))
        sub = Subscription(self, self._next_sub, topic, key, start, on_dropped or self.on_dropped,
                           live_marker, max_queue or self.max_queue)
        self._next_sub += 1
        if start is not None and start.mode == codec.START_POSITIONS:
            sub.positions = dict(start.arg)  # type: ignore[arg-type]
        self._subs[sub.id] = sub
        if self._welcomed.is_set():
            self._send_subscribe(sub)
        return sub

    async def publish(self, topic: str, key: Union[bytes, str, None], value: Union[bytes, str, None], *,
                      headers: Optional[List[Tuple[str, Optional[bytes]]]] = None,
                      timeout: Optional[float] = None) -> PubAck:
        """Writes one record to Kafka through the node; returns (partition,
        offset) once Kafka has it. str key/value are UTF-8 encoded; None is
        no key / a null value. Raises ServerError when the node refuses it,
        ConnectionLost (LOST) when the connection goes before the answer
        (the record may or may not be in Kafka). While reconnecting it waits
        for the new connection. headers: protocol version 2's PUBLISH has
        no headers field, so any header is refused (UNSUPPORTED)."""
        if headers:
            raise SubwayError(ErrorCode.UNSUPPORTED, "PUBLISH carries no headers in protocol version 2")
        k = key.encode("utf-8") if isinstance(key, str) else key
        v = value.encode("utf-8") if isinstance(value, str) else value
        fut = await self._request(lambda req: codec.encode(codec.PUBLISH, req, topic, k, v), timeout)
        return await self._answer(fut, timeout)

    async def refresh_token(self, token: str, *, timeout: Optional[float] = None) -> int:
        """Replaces the token: the node checks it at once (AUTH) and the
        reconnects use it. Returns when it expires (ms since 1970, 0:
        never). Raises ServerError: FORBIDDEN when it names another client
        or does not allow a subscription held (the old token stays),
        UNAUTHORIZED when it does not verify (the connection closes)."""
        self.token = token
        fut = await self._request(lambda req: codec.encode(codec.AUTH, req, token), timeout)
        self.expires_ms = await self._answer(fut, timeout)
        return self.expires_ms

    async def unsubscribe(self, sub: Subscription) -> None:
        """Same as sub.unsubscribe()."""
        await self._unsubscribe(sub)

    async def _unsubscribe(self, sub: Subscription) -> None:
        if sub._end is not None or self._subs.pop(sub.id, None) is None:
            return
        sub._leaving = True
        handle = sub.handle
        sub._finish(StopAsyncIteration())
        if handle is None or not self._welcomed.is_set() or self._wire is None:
            return   # not on the node (yet, or not on this connection): nothing to say
        self._handles.pop(handle, None)
        fut = self._loop.create_future()
        req = self._new_req(fut)
        self._write(codec.encode(codec.UNSUBSCRIBE, req, handle))
        try:
            await self._answer(fut, self.timeout)
        except ConnectionLost:
            pass      # the node releases it with the connection

    # ------------------------------------------------------------ internals: requests

    def _check_open(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise ClientClosed()

    def _new_req(self, what: Any) -> int:
        req = self._next_req
        self._next_req = req + 1 if req < 0xFFFFFFFF else 1
        self._reqs[req] = what
        return req

    async def _request(self, build: Callable[[int], bytes], timeout: Optional[float]) -> "asyncio.Future":
        self._check_open()
        if not self._welcomed.is_set():
            try:
                await asyncio.wait_for(self._wait_welcomed(), timeout)
            except asyncio.TimeoutError:
                raise SubwayError(ErrorCode.TIMEOUT, "no connection to %s within %s s" % (self.addr, timeout)) from None
        fut = self._loop.create_future()
        req = self._new_req(fut)
        frame = build(req)
        if len(frame) - codec.HEADER_SIZE > self.max_frame_out:
            del self._reqs[req]
            raise SubwayError(ErrorCode.ARG, "frame of %d bytes exceeds the node's max_frame %d"
                              % (len(frame) - codec.HEADER_SIZE, self.max_frame_out))
        self._write(frame)
        return fut

    async def _wait_welcomed(self) -> None:
        while not self._welcomed.is_set():
            self._check_open()
            await self._welcomed.wait()
        self._check_open()

    async def _answer(self, fut: "asyncio.Future", timeout: Optional[float]) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise SubwayError(ErrorCode.TIMEOUT, "no answer from %s within %s s" % (self.addr, timeout)) from None

    def _write(self, frame: bytes) -> None:
        # One write per whole frame: a PONG never lands inside another frame.
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.write(frame)

    def _hello(self) -> bytes:
        """The HELLO frame: the one place it is built; version 3 carries the token."""
        if self.token is None:
            return codec.encode(codec.HELLO, codec.PROTO_VERSION, self.client_name)
        return codec.encode(codec.HELLO, codec.PROTO_VERSION, self.client_name, self.token)

    def _send_subscribe(self, sub: Subscription) -> None:
        start = self._resume_start(sub)
        req = self._new_req(sub)
        sub._req_id = req
        if start is None:
            self._write(codec.encode(codec.SUBSCRIBE, req, sub.topic, sub.key))
        else:
            self._write(codec.encode(codec.SUBSCRIBE, req, sub.topic, sub.key, start))

    def _resume_start(self, sub: Subscription) -> Optional[list]:
        """The start field of sub's SUBSCRIBE on this connection, as
        libsubway's client_feed_start: its positions once it has them for
        every partition (after LIVE, or when it started live), else its own
        start again, skipping the records it already delivered."""
        mode = sub.start.mode if sub.start is not None else 0
        from_pos = mode == codec.START_POSITIONS or \
            (sub._answered and (sub._had_live or (bool(sub.positions) and mode == 0)))
        sub._skip_seen = False
        if from_pos:
            mode = codec.START_POSITIONS
        elif sub._answered and sub.positions:
            sub._skip_seen = True
        if mode and self.version < 2:
            if not sub._answered:
                raise SubwayError(ErrorCode.UNSUPPORTED, "node %s speaks protocol version 1: no start "
                                  "position" % self.addr)
            sub._skip_seen = False      # a version-1 node can only restart it live
            return None
        if mode == 0:
            return None
        if mode == codec.START_POSITIONS:
            return [mode, sorted(sub.positions.items())]
        return sub.start.wire()  # type: ignore[union-attr]

    # ------------------------------------------------------------ internals: the connection

    async def _run(self) -> None:
        attempt = 0
        welcomed_once = False
        while not self._closed:
            try:
                await self._connect()
            except SubwayError as e:
                if not welcomed_once or not self.reconnect:
                    self._stop(e)
                    return
                attempt += 1
                await self._pause(attempt, e)
                continue
            if welcomed_once:
                self.reconnects += 1
            welcomed_once = True
            attempt = 0
            if not self._first.done():
                self._first.set_result(None)
            self._resubscribe()
            if self.on_reconnect is not None and self.reconnects:
                self.on_reconnect("connected", None, 0.0)
            why = await self._wire.lost  # type: ignore[union-attr]
            self._drop_connection(why)
            if self._closed:
                return
            if not self.reconnect:
                self._stop(why)
                return
            attempt += 1
            await self._pause(attempt, why)

    async def _pause(self, attempt: int, why: SubwayError) -> None:
        delay = backoff(attempt, self.reconnect_base, self.reconnect_max)
        if self.on_reconnect is not None:
            self.on_reconnect("lost", why, delay)
        await asyncio.sleep(delay)      # the backoff itself, not a wait for an event

    async def _connect(self) -> None:
        self._goaway = False
        self._conn_error = None
        try:
            _, wire = await asyncio.wait_for(
                self._loop.create_connection(lambda: _Wire(self), self.host, self.port, ssl=self.ssl,
                                             server_hostname=self.server_hostname), self.timeout)
        except asyncio.TimeoutError:
            raise ConnectionLost(ErrorCode.TIMEOUT, "connect %s: timed out after %s s" % (self.addr, self.timeout)) from None
        except OSError as e:
            raise ConnectionLost(ErrorCode.IO, "connect %s: %s" % (self.addr, e.strerror or e), e) from None
        self._wire = wire
        self._last_rx = self._loop.time()
        wire.transport.write(self._hello())  # type: ignore[union-attr]
        welcome = self._loop.create_future()
        self._reqs[0] = welcome             # req 0: the handshake
        try:
            done, _ = await asyncio.wait([welcome, wire.lost], timeout=self.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._reqs.pop(0, None)
        if welcome in done and welcome.exception() is None:
            self._arm_watchdog()
            self._welcomed.set()
            return
        why = (welcome.exception() if welcome.done() else None) or \
            (wire.lost.result() if wire.lost.done() else None) or \
            ConnectionLost(ErrorCode.TIMEOUT, "no WELCOME from %s within %s s" % (self.addr, self.timeout))
        self._drop_connection(why)
        raise why

    def _drop_connection(self, why: SubwayError) -> None:
        """Forgets the current connection: requests in flight fail with
        LOST, subscriptions wait for the next one (or end, in _stop)."""
        self._welcomed.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        w, self._wire = self._wire, None
        if w is not None and w.transport is not None:
            w.transport.abort()
        self._handles.clear()
        self._paused = False
        reqs, self._reqs = self._reqs, {}
        lost = ConnectionLost(ErrorCode.LOST, "connection lost before the answer: %s" % why.text)
        for r in reqs.values():
            if isinstance(r, Subscription):
                r._req_id = 0
            elif not r.done():
                r.set_exception(lost)
                r.exception()
        for s in self._subs.values():
            s.handle = None
            s.live = False

    def _stop(self, why: BaseException) -> None:
        """Ends the client for good: every subscription ends, waiters fail."""
        if self._fatal is None and not isinstance(why, ClientClosed):
            self._fatal = why if isinstance(why, SubwayError) else SubwayError(ErrorCode.IO, str(why))
        if not self._first.done():
            self._first.set_exception(why)
            self._first.exception()
        w = self._wire
        if w is not None and not w.lost.done():
            w.lost.set_result(why)
        self._drop_connection(why if isinstance(why, SubwayError) else ClientClosed())
        end = StopAsyncIteration() if isinstance(why, ClientClosed) else why
        for s in list(self._subs.values()):
            s._finish(end)
        self._subs.clear()
        self._welcomed.set()         # wake waiters: they find the client closed

    def _conn_failed(self, wire: _Wire, why: SubwayError) -> None:
        if not wire.lost.done():
            if self._conn_error is not None and why.code in (ErrorCode.EOF, ErrorCode.IO):
                why = self._conn_error      # the node said why before it closed
            elif self._goaway and why.code == ErrorCode.EOF:
                why = ConnectionLost(ErrorCode.GOAWAY, "node going away: %s" % self._goaway_text)
            wire.lost.set_result(why)
        if wire.transport is not None:
            wire.transport.abort()

    def _arm_watchdog(self) -> None:
        if self.heartbeat_ms <= 0:
            return
        limit = self.heartbeat_ms * HEARTBEAT_MISSES / 1000.0
        wire = self._wire

        def check() -> None:
            if wire is not self._wire:
                return
            idle = self._loop.time() - self._last_rx
            if idle >= limit and not self._paused:
                self._conn_failed(wire, ConnectionLost(ErrorCode.TIMEOUT, "heartbeat timeout: nothing from %s for %d ms"
                                                       % (self.addr, self.heartbeat_ms * HEARTBEAT_MISSES)))
                return
            self._watchdog = self._loop.call_later(max(limit - idle, 0.05), check)

        self._watchdog = self._loop.call_later(limit, check)

    def _resubscribe(self) -> None:
        for sub in list(self._subs.values()):
            if sub._end is None and sub._req_id == 0:
                try:
                    self._send_subscribe(sub)
                except SubwayError as e:
                    self._subs.pop(sub.id, None)
                    sub._finish(e)

    # ------------------------------------------------------------ internals: frames in

    def _on_data(self, wire: _Wire, data: bytes) -> None:
        if wire is not self._wire or wire.lost.done():
            return
        self._last_rx = self._loop.time()
        d = wire.decoder
        d.feed(data)
        while not wire.lost.done():
            try:
                f = d.next()
            except ProtocolError as e:
                if e.code == ErrorCode.UNKNOWN_TYPE:
                    continue        # a newer node's frame: skip it
                self._conn_failed(wire, e)
                return
            if f is None:
                break
            try:
                self._dispatch(wire, f)
            except SubwayError as e:
                self._conn_failed(wire, e)
                return
            if self._goaway and not self._reqs:
                # Every answer is in: hang up now instead of waiting for the node.
                self._conn_failed(wire, ConnectionLost(ErrorCode.GOAWAY, "node going away: %s" % self._goaway_text))
                return
        if self._paused and wire.transport is not None:
            wire.transport.pause_reading()

    def _dispatch(self, wire: _Wire, f: list) -> None:
        t = f[0]
        if t == codec.MESSAGE:
            sub = self._handles.get(f[1])
            if sub is None or sub._leaving:
                return
            part, off = f[2], f[3]
            if sub._skip_seen and off < sub.positions.get(part, -1):
                return
            sub.positions[part] = off + 1
            sub._push(Record(sub.topic, f[5], f[6], part, off, f[4], f[7] if len(f) > 7 else []))
            if sub._full():
                self._paused = True
        elif t == codec.PING:
            self._write(codec.encode(codec.PONG, f[1]))
        elif t == codec.WELCOME:
            fut = self._reqs.get(0)
            if fut is None or fut.done():
                raise ProtocolError(ErrorCode.PROTOCOL, "unexpected WELCOME")
            if not codec.PROTO_MIN_VERSION <= f[1] <= codec.PROTO_VERSION:
                raise ProtocolError(ErrorCode.PROTOCOL, "node speaks version %d, this client %d to %d"
                                    % (f[1], codec.PROTO_MIN_VERSION, codec.PROTO_VERSION))
            self.version, self.node_id, self.heartbeat_ms, self.max_frame_out = f[1], f[2], f[3], f[4]
            if len(f) > 9:                      # version 3: who the node says we are, and until when
                self.client, self.expires_ms = f[8], f[9]
            fut.set_result(None)
        elif 0 in self._reqs and t not in (codec.ERROR, codec.GOAWAY, codec.PONG):
            raise ProtocolError(ErrorCode.PROTOCOL, "expected WELCOME, got %s" % codec.TYPE_NAMES[t])
        elif t == codec.SUBSCRIBED:
            self._on_subscribed(f[1], f[2], f[3])
        elif t == codec.LIVE:
            sub = self._handles.get(f[1])
            if sub is not None and not sub._leaving:
                sub.positions = dict(f[2])
                sub.live = sub._had_live = True
                sub._skip_seen = False
                sub._live_ev.set()
                if sub._live_marker:
                    sub._push(Live(sub.topic, sub.key, dict(sub.positions)))
        elif t == codec.DROPPED:
            sub = self._handles.get(f[1])
            if sub is not None and not sub._leaving:
                if sub._on_dropped is not None:
                    sub._on_dropped(sub, f[2])
                else:
                    sub._push(Dropped(sub.topic, sub.key, f[2]))
        elif t == codec.PUBACK:
            fut = self._reqs.pop(f[1], None)
            if fut is not None and not isinstance(fut, Subscription) and not fut.done():
                fut.set_result(PubAck(f[2], f[3]))
        elif t == codec.AUTHED:
            fut = self._reqs.pop(f[1], None)
            if fut is not None and not isinstance(fut, Subscription) and not fut.done():
                fut.set_result(f[2])
        elif t == codec.UNSUBSCRIBED:
            fut = self._reqs.pop(f[1], None)
            if fut is not None and not isinstance(fut, Subscription) and not fut.done():
                fut.set_result(None)
        elif t == codec.ERROR:
            self._on_error(f[1], f[2], f[3])
        elif t == codec.GOAWAY:
            self._goaway = True
            self._goaway_text = f[1]
        elif t == codec.PONG:
            pass
        else:
            raise ProtocolError(ErrorCode.PROTOCOL, "unexpected %s from the node" % codec.TYPE_NAMES[t])

    def _on_subscribed(self, req: int, handle: int, partitions: List[int]) -> None:
        sub = self._reqs.pop(req, None)
        if not isinstance(sub, Subscription):
            return
        sub._req_id = 0
        if sub._end is not None or sub.id not in self._subs:
            # Unsubscribed while the SUBSCRIBE was out: give it back.
            self._write(codec.encode(codec.UNSUBSCRIBE, self._new_req(self._loop.create_future()), handle))
            return
        other = self._handles.get(handle)
        if other is not None and other is not sub:
            other.handle = None     # the node reused a handle: the newest answer wins
            self._send_subscribe(other)
        sub.handle = handle
        sub.partitions = list(partitions)
        sub._answered = True
        self._handles[handle] = sub
        if not sub._ready.done():
            sub._ready.set_result(sub)
        if self.version < 2:
            sub.live = True         # no LIVE on version 1
            sub._live_ev.set()

    def _on_error(self, req: int, code: int, text: str) -> None:
        err = ServerError(code, text, req)
        if req == 0:
            fut = self._reqs.get(0)
            if fut is not None and not fut.done():
                fut.set_exception(err)      # refused before WELCOME: TOO_MANY_CONNS, VERSION, ...
                fut.exception()
            self._conn_error = err          # the node closes after it: that names the loss
            return
        what = self._reqs.pop(req, None)
        if isinstance(what, Subscription):
            what._req_id = 0
            if code in RETRIED_CODES and self.reconnect and what._end is None:
                wire = self._wire
                delay = backoff(1, self.reconnect_base, self.reconnect_max) + self.reconnect_base
                self._loop.call_later(delay, self._retry_subscribe, wire, what)
                return
            self._subs.pop(what.id, None)
            what._finish(err)
        elif what is not None and not what.done():
            what.set_exception(err)

    def _retry_subscribe(self, wire: Optional[_Wire], sub: Subscription) -> None:
        if wire is self._wire and self._welcomed.is_set() and sub._end is None and sub._req_id == 0 \
                and sub.handle is None:
            self._send_subscribe(sub)

    def _drained(self, sub: Subscription) -> None:
        """A reader took items: read the socket again once every queue has room."""
        if self._paused and len(sub._items) <= sub._max_queue // 2 and \
                not any(s._full() for s in self._subs.values()):
            self._paused = False
            self._last_rx = self._loop.time()   # our own pause is no silence of the node's
            if self._wire is not None and self._wire.transport is not None:
                self._wire.transport.resume_reading()


def connect(addr: str, **options: Any) -> AsyncClient:
    """A client for the node at addr ("host:port"). Use it as
    `async with subway.connect(addr) as c:` or `c = await subway.connect(addr)`.

    Options (all keyword):
      token=None            a JWT the node checks (--auth): in every HELLO; replace
                            it before it expires with await c.refresh_token(new)
      client_name="subway-py"  names the client in the node's logs
      reconnect=True        after a loss (EOF, GOAWAY, heartbeat silence, bad
                            frame), reconnect and resume every subscription
                            from its positions; False: a loss ends the client
      reconnect_base=0.1, reconnect_max=10.0  backoff (s), full jitter
      timeout=10.0          connect + handshake (s); also unsubscribe's answer
      max_frame=16 MiB      the largest frame accepted from the node
      on_dropped=None       default DROPPED callback (sub, count) for subscriptions
      on_reconnect=None     called (event, error, delay): "lost" with the
                            reason and the delay before the next attempt,
                            "connected" once a new connection is up
      max_queue=10000       items a subscription holds unread before the
                            client stops reading the socket
      ssl=None              TLS to a node's --tls-listen port: an ssl.SSLContext
                            (ssl.create_default_context(cafile=...), plus
                            load_cert_chain() for a client certificate), or
                            True for the system's CAs; the protocol inside is
                            unchanged
      server_hostname=None  the name the node's certificate must carry
                            (default: the host of addr)
    """
    return AsyncClient(addr, **options)
