"""The memory budget every in-flight buffer draws from.

A byte-counting semaphore. A GET reserves its stream cost (see
``TransferConfig``) before it is sent and returns it when its body is done;
an ordered consumer reserves each part it has to hold. When the budget is
spent, new work waits — so concurrency adapts to the budget instead of
memory growing with the object size, the number of objects or the
concurrency asked for. Waiters are served first come, first served, so a
large reservation cannot be starved by a stream of small ones.

Holdings
--------
Some reservations last as long as something stays open: an ordered stream's
window, a parsing pipeline's buffers. They are taken with :meth:`hold`,
from a *holdable* share of the budget that always leaves room for a GET
(``planning._windows`` explains why and sizes it), so that a stream holding
its window can never starve the GETs that fill it. Holdings queue among
themselves, first come, first served, and are planned against what is free
of that share when their turn comes (``fit``): a stream then takes its
bytes from the budget like any reservation. A holding waiting for its turn
is not in the GETs' queue, so it never holds them up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator

from .._errors import ConfigError

#: Given the holdable bytes free, how many a holding takes (None: too few, wait).
Fit = Callable[[int], int | None]


class MemoryBudget:
    """A pool of ``limit`` bytes shared by everything one client does.

    Example:
        >>> budget = MemoryBudget(64 << 20)
        >>> async def fetch():  # doctest: +SKIP
        ...     async with budget.reserve(768 << 10):
        ...         ...  # one GET in flight
    """

    def __init__(self, limit: int, *, holdable: int | None = None) -> None:
        if limit <= 0:
            raise ConfigError(f"memory budget must be positive, got {limit}")
        self.limit = limit
        #: Bytes that :meth:`hold` may have taken at once (default: all).
        self.holdable = limit if holdable is None else min(limit, holdable)
        self._used = 0
        self._peak = 0
        self._held = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        #: Bytes that users planned on (``planned_share``), while they run.
        self._planned = 0
        self._holders: deque[tuple[Fit, asyncio.Future[int]]] = deque()

    @property
    def used(self) -> int:
        return self._used

    @property
    def held(self) -> int:
        """Bytes taken by :meth:`hold` and not yet given back."""
        return self._held

    @property
    def peak(self) -> int:
        """The most bytes reserved at once since the budget was made."""
        return self._peak

    def take_now(self, size: int) -> bool:
        """Take ``size`` bytes if they are free and nobody waits; False otherwise
        (then :meth:`acquire` waits its turn). What every GET of a budget
        with room does, without making a coroutine to do it."""
        if size >= 0 and not self._waiters and self._used + size <= self.limit:
            self._take(size)
            return True
        return False

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes are free, then take them."""
        if size < 0:
            raise ValueError(f"cannot reserve a negative number of bytes ({size})")
        if size > self.limit:
            raise ConfigError(f"cannot reserve {size} bytes from a budget of {self.limit}")
        if self.take_now(size):
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

    def lend(self, size: int, *, holdable: int) -> Lending | None:
        """Lend ``size`` bytes away until :meth:`Lending.give_back`, at most
        ``holdable`` bytes holdable meanwhile: the budget then behaves as one
        of ``limit - size`` bytes would. What the parent of a local process
        pool does while its workers spend their shares.

        Only from an idle budget (nothing reserved, held or waiting, no
        :meth:`planned_share` open), else None: a lending that waited in the
        queue would hold up the GETs of whatever holds bytes now (an open
        stream), and those holdings only come back once their GETs have
        run; one that did not wait could leave a planned user (an
        inventory's reader) less than it planned on.
        """
        if self._used or self._held or self._waiters or self._holders or self._planned:
            return None
        self._take(size)
        lending = Lending(self, size, self.holdable)
        self.holdable = min(self.holdable, holdable)
        return lending

    @contextlib.contextmanager
    def planned_share(self, size: int) -> Iterator[None]:
        """For the ``with`` block, someone counts on ``size`` bytes of this
        budget (an inventory's reader, sized by its ``memory_share``):
        :meth:`lend` lends nothing meanwhile, and :attr:`planned` tells a
        process pool what its workers must not be given."""
        self._planned += size
        try:
            yield
        finally:
            self._planned -= size

    @property
    def planned(self) -> int:
        """Bytes that open :meth:`planned_share` blocks count on."""
        return self._planned

    def _returned(self, size: int, holdable: int) -> None:
        self.holdable = holdable
        self.release(size)
        self._wake_holders()

    def reserve(self, size: int) -> Reservation:
        """Hold ``size`` bytes for the duration of an ``async with`` block."""
        return Reservation(self, size)

    async def hold(self, fit: Fit) -> int:
        """Take a long-lived share of the budget; return how many bytes.

        ``fit(free)`` says how many of the ``free`` holdable bytes to take, or
        None when they are too few: the holding then waits, in turn, for
        other holdings to be given back. Give it back with :meth:`unhold`.

        Raises:
            ConfigError: ``fit`` would refuse even the whole holdable share.
        """
        if fit(self.holdable) is None:
            raise ConfigError(
                f"nothing fits in the {self.holdable} bytes of memory_limit ({self.limit} "
                "bytes) that open streams may hold"
            )
        size = fit(self.holdable - self._held) if not self._holders else None
        if size is not None:
            self._held += size
        else:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            entry = (fit, future)
            self._holders.append(entry)
            try:
                size = await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._give_back_held(future.result())
                elif entry in self._holders:
                    self._holders.remove(entry)
                    self._wake_holders()
                raise
        try:
            # Within the holdable share the bytes are sure to come free: the
            # GETs in the way all end without asking for more.
            await self.acquire(size)
        except BaseException:
            self._give_back_held(size)
            raise
        return size

    def unhold(self, size: int) -> None:
        """Give back ``size`` bytes taken by :meth:`hold`."""
        self.release(size)
        self._give_back_held(size)

    def _give_back_held(self, size: int) -> None:
        self._held -= size
        assert self._held >= 0, "gave back more than was held"
        self._wake_holders()

    def _wake_holders(self) -> None:
        while self._holders:
            fit, future = self._holders[0]
            if future.done():  # cancelled waiter
                self._holders.popleft()
                continue
            size = fit(self.holdable - self._held)
            if size is None:
                return
            self._holders.popleft()
            self._held += size
            future.set_result(size)

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


class Lending:
    """Bytes :meth:`MemoryBudget.lend` took away; :meth:`give_back` them once."""

    def __init__(self, budget: MemoryBudget, size: int, holdable: int) -> None:
        self._budget: MemoryBudget | None = budget
        self._size = size
        self._holdable = holdable

    def give_back(self) -> None:
        """The bytes and the holdable share come back (again: nothing happens)."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._returned(self._size, self._holdable)


class Reservation:
    """``async with``: ``size`` bytes of ``budget`` held for the block.

    A plain class rather than an ``@asynccontextmanager``: every GET enters
    one, and the generator machinery cost several times what the
    reservation itself does.
    """

    __slots__ = ("_budget", "_size")

    def __init__(self, budget: MemoryBudget, size: int) -> None:
        self._budget = budget
        self._size = size

    async def __aenter__(self) -> None:
        # A cancelled wait takes nothing (see acquire), so there is nothing to undo.
        if not self._budget.take_now(self._size):
            await self._budget.acquire(self._size)

    async def __aexit__(self, *exc_info: object) -> None:
        self._budget.release(self._size)
