"""Batches from a parsing thread to the event loop, with back-pressure.

The thread that parses an object (``_consume``) reads it through hops to the
loop and sends what it makes in batches through a small queue; when the
consumer leaves, the loop stops the channel and the thread's next hop ends
it. See ``_consume``'s docstring for the pipeline this connects.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Batches waiting between the parsing thread and the consumer.
QUEUE_BATCHES = 2


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
