"""The memory budget every in-flight buffer draws from.

A byte-counting semaphore. A GET reserves its stream cost (see
``TransferConfig``) before it is sent and returns it when its body is done;
an ordered consumer reserves each part it has to hold. When the budget is
spent, new work waits — so concurrency adapts to the budget instead of
memory growing with the object size, the number of objects or the
concurrency asked for. Waiters are served first come, first served, so a
large reservation cannot be starved by a stream of small ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .._errors import ConfigError


class MemoryBudget:
    """A pool of ``limit`` bytes shared by everything one client does.

    Example:
        >>> budget = MemoryBudget(64 << 20)
        >>> async def fetch():  # doctest: +SKIP
        ...     async with budget.reserve(768 << 10):
        ...         ...  # one GET in flight
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ConfigError(f"memory budget must be positive, got {limit}")
        self.limit = limit
        self._used = 0
        self._peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        """The most bytes reserved at once since the budget was made."""
        return self._peak

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes are free, then take them."""
        if size < 0:
            raise ValueError(f"cannot reserve a negative number of bytes ({size})")
        if size > self.limit:
            raise ConfigError(f"cannot reserve {size} bytes from a budget of {self.limit}")
        if not self._waiters and self._used + size <= self.limit:
            self._take(size)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiters.append(entry)
        try:
            await future
        except BaseException:
            # Cancelled while waiting: if the bytes were granted in the same
            # instant, give them back; either way leave the queue.
            if future.done() and not future.cancelled():
                self.release(size)
            elif entry in self._waiters:
                self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, size: int) -> None:
        """Give ``size`` bytes back and wake whoever now fits."""
        self._used -= size
        assert self._used >= 0, "released more than reserved"
        self._wake()

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes for the duration of the block."""
        await self.acquire(size)
        try:
            yield
        finally:
            self.release(size)

    def _take(self, size: int) -> None:
        self._used += size
        self._peak = max(self._peak, self._used)

    def _wake(self) -> None:
        while self._waiters:
            size, future = self._waiters[0]
            if future.done():  # cancelled waiter
                self._waiters.popleft()
                continue
            if self._used + size > self.limit:
                return
            self._waiters.popleft()
            self._take(size)
            future.set_result(None)
