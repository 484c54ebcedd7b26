"""sync.py -- the blocking client for scripts: the asyncio client run on a private event loop in a background thread."""

# One implementation of the protocol (aio.py) serves both APIs: this module
# only carries calls over to the loop's thread and results back. Records
# come over in batches (everything queued at the time), so the thread hop
# costs per batch, not per record.

import asyncio
import threading
from typing import Any, Iterator, List, Optional, Union

from .aio import AsyncClient, Subscription
from .errors import ClientClosed
from .records import Item, PubAck, Start


class Client:
    """A blocking client of the node at addr ("host:port"), with the same
    options as subway.connect(). Connects at once (raising the error when
    that fails):

        c = subway.Client("127.0.0.1:7700")
        for rec in c.subscribe("orders", "cust-1", start=subway.Start.last(10)):
            print(rec.offset, rec.value)

    Callbacks (on_dropped, on_reconnect) run on the client's own thread.
    Use it from one thread at a time, or as a context manager."""

    def __init__(self, addr: str, **options: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="subway-client", daemon=True)
        self._thread.start()
        try:
            self._ac: AsyncClient = self._call(self._open(addr, options))
        except BaseException:
            self._shutdown()
            raise

    async def _open(self, addr: str, options: Any) -> AsyncClient:
        ac = AsyncClient(addr, **options)
        try:
            return await ac.open()
        except BaseException:
            await ac.close()
            raise

    def _call(self, coro: Any, timeout: Optional[float] = None) -> Any:
        if not self._thread.is_alive():
            coro.close()
            raise ClientClosed()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def node_id(self) -> Optional[str]:
        return self._ac.node_id

    @property
    def aio(self) -> AsyncClient:
        """The asyncio client underneath (its attributes: version, heartbeat_ms, ...)."""
        return self._ac

    def subscribe(self, topic: str, key: Union[bytes, str, None], start: Optional[Start] = None,
                  **options: Any) -> "BlockingSubscription":
        """As AsyncClient.subscribe(); iterate the result."""
        async def sub() -> Subscription:
            return self._ac.subscribe(topic, key, start, **options)
        return BlockingSubscription(self, self._call(sub()))

    def publish(self, topic: str, key: Union[bytes, str, None], value: Union[bytes, str, None],
                **options: Any) -> PubAck:
        """As AsyncClient.publish(): (partition, offset) once Kafka has it."""
        return self._call(self._ac.publish(topic, key, value, **options))

    def refresh_token(self, token: str) -> int:
        """As AsyncClient.refresh_token(): when the new token expires."""
        return self._call(self._ac.refresh_token(token))

    def close(self) -> None:
        """Closes the connection and stops the client's thread."""
        if self._thread.is_alive():
            self._call(self._ac.close())
        self._shutdown()

    def _shutdown(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BlockingSubscription:
    """An iterator of a subscription's items (Record, Dropped, Live); the
    attributes of the Subscription underneath (topic, key, partitions,
    positions, live) read through."""

    def __init__(self, client: Client, sub: Subscription):
        self._c = client
        self.sub = sub
        self._batch: List[Item] = []
        self._i = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sub, name)

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._i >= len(self._batch):
            try:
                self._batch = self._c._call(self.sub.next_batch())
            except StopAsyncIteration:
                raise StopIteration from None
            self._i = 0
        item = self._batch[self._i]
        self._i += 1
        return item

    def ready(self, timeout: Optional[float] = None) -> "BlockingSubscription":
        """Waits for SUBSCRIBED; raises the node's refusal."""
        self._c._call(self.sub.ready(), timeout)
        return self

    def wait_live(self, timeout: Optional[float] = None) -> dict:
        """Waits for LIVE; returns the positions."""
        return self._c._call(self.sub.wait_live(), timeout)

    def unsubscribe(self) -> None:
        self._c._call(self.sub.unsubscribe())

    close = unsubscribe
