"""Parsing an object on a worker thread while it downloads on the event loop.

Why a thread
------------
Decompression and CSV parsing are CPU work: zlib inflates ~300 MB/s and the
``csv`` module parses a few hundred thousand rows per second. Done on the
event loop, they would stop every socket of the client for as long as they
run (and, under a memory budget, stall the very fetching that feeds them).
So the async consumers hand that work to one thread per open object and the
loop keeps downloading.

The three stages and what connects them
---------------------------------------
1. **Download** — an :class:`ObjectStream` on the loop fetches parts ahead of
   the reader, within its window.
2. **Decompress + parse** — the thread reads the stream through an
   :class:`ObjectReader` whose every refill is one hop to the loop
   (``run_coroutine_threadsafe(stream.readinto(...))``). No extra byte queue:
   the stream's window already is the bounded buffer between the two.
3. **Consume** — parsed items travel back in batches through a small
   ``asyncio.Queue`` (:data:`QUEUE_BATCHES` deep). A full queue blocks the
   thread, the thread stops reading, the window fills and the fetchers wait:
   back-pressure runs from the consumer all the way to the sockets.

Stopping early
--------------
When the consumer leaves (``break``, an exception, cancellation), the
generator's ``finally`` marks the channel stopped and drains it (a thread
blocked on a full queue wakes up), stops the stream (a thread blocked on a
read gets "closed"), waits for the thread to end, and only then gives the
pipeline's share of the budget back. Nothing runs on after the generator
has been closed.

Memory
------
Per open object (all but the last term charged to the client's budget)::

    window                                   the stream's parts ahead (e.g. 8-32 MiB)
  + GETs in flight x stream_cost             768 KiB each by default
  + PIPELINE_COST (2 MiB) = reader buffer    256 KiB
                          + zlib state        ~256 KiB (32 KiB window + inflate tables)
                          + text/CSV buffers  ~128 KiB (gzip and TextIOWrapper chunks)
                          + item queue        (QUEUE_BATCHES + 2) batches of at most
                                              BATCH_ITEMS items / BATCH_CHARS characters
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Generic, TypeVar

from .._client import AsyncClient
from .._config import MiB
from .._source import Source
from .._sync import ObjectReader

T = TypeVar("T")
R = TypeVar("R")

#: Bytes of the client's budget an async parsing pipeline holds besides its window.
PIPELINE_COST = 2 * MiB
#: Bytes the parsing thread asks the stream for per hop to the loop.
THREAD_READER_BUFFER = 256 * 1024
#: Batches waiting between the parsing thread and the consumer.
QUEUE_BATCHES = 2
#: A batch is sent once it has this many items ...
BATCH_ITEMS = 256
#: ... or its items came from this many characters of text.
BATCH_CHARS = 32 * 1024

#: Makes the parsing function for an object once it is open (its info known).
Parse = Callable[[BinaryIO], Iterable[T]]


class Stopped(Exception):
    """The consumer has gone: the parsing thread must end."""


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_END = object()


class Channel(Generic[T]):
    """Batches from a worker thread to the event loop, at most ``maxsize`` waiting.

    The thread side (:meth:`call`, :meth:`send`) blocks; the loop side
    (:meth:`receive`, :meth:`stop`) awaits.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = QUEUE_BATCHES) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._stopped = False
        self._done = asyncio.Event()

    # -- the worker thread's side --------------------------------------------

    def call(self, coroutine: Coroutine[Any, Any, R]) -> R:
        """Run ``coroutine`` on the loop and wait for its result."""
        if self._stopped:
            coroutine.close()
            raise Stopped
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _put(self, item: Any) -> None:
        if self._stopped:
            raise Stopped
        await self._queue.put(item)

    def send(self, batch: list[T]) -> None:
        """Hand a batch to the consumer, waiting while the queue is full."""
        self.call(self._put(batch))

    def run(self, produce: Callable[[], Iterable[list[T]]]) -> None:
        """The thread's body: send what ``produce`` makes, then the end or the error."""
        try:
            try:
                for batch in produce():
                    self.send(batch)
                self.call(self._put(_END))
            except Stopped:
                pass
            except BaseException as error:
                self.call(self._put(_Failure(error)))
        except Stopped:
            pass
        finally:
            try:
                self._loop.call_soon_threadsafe(self._done.set)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    # -- the event loop's side ---------------------------------------------------

    async def receive(self) -> list[T] | None:
        """The next batch; None at the end; raises what the thread raised."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, _Failure):
            raise item.error
        batch: list[T] = item
        return batch

    def stop(self) -> None:
        """Tell the thread to end: its next hop raises :class:`Stopped`; a
        thread waiting on a full queue is woken by the drain."""
        self._stopped = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def finished(self) -> None:
        await self._done.wait()

    def start(self, produce: Callable[[], Iterable[list[T]]], name: str) -> None:
        # Our own daemon thread, not the default executor: a parser blocks on
        # the loop for its input, and must never wait for a free executor slot
        # that other blocked parsers hold.
        threading.Thread(target=self.run, args=(produce,), name=name, daemon=True).start()


class CountingLines:
    """An iterator over text lines that counts their characters (for batching)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.chars += len(line)
            yield line


def batched(items: Iterable[T], counter: CountingLines | None = None) -> Iterator[list[T]]:
    """Group ``items`` into lists of at most BATCH_ITEMS items, also cut every
    BATCH_CHARS characters of input when ``counter`` counts them."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH_ITEMS or (counter is not None and counter.chars >= BATCH_CHARS):
            yield batch
            batch = []
            if counter is not None:
                counter.chars = 0
    if batch:
        yield batch


async def parse_in_thread(
    client: AsyncClient,
    source: str | Source,
    make_batches: Callable[[ObjectReader], Iterable[list[T]]],
    *,
    version_id: str | None = None,
    window: int | str | None = None,
    part_size: int | str | None = None,
) -> AsyncGenerator[list[T], None]:
    """Batches of what ``make_batches`` parses from the object, parsed on a
    worker thread while the object downloads. See the module docstring."""
    loop = asyncio.get_running_loop()
    # The pipeline's buffers are held with the window, in one holding: held
    # apart, pipelines waiting for windows could hold all the budget.
    stream = await client._open_stream(source, version_id, window, part_size, extra=PIPELINE_COST)
    try:
        channel: Channel[T] = Channel(loop)
        reader = ObjectReader(
            stream, channel.call, buffer_size=THREAD_READER_BUFFER, closes_stream=False
        )
        channel.start(lambda: make_batches(reader), name="s3pull-parse")
        try:
            while (batch := await channel.receive()) is not None:
                yield batch
        finally:
            channel.stop()
            await stream.stop()  # a thread waiting for bytes gets "closed" now
            await channel.finished()
    finally:
        await stream.aclose()  # the thread is done with its buffers: give them back
