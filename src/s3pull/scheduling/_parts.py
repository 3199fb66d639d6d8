"""The part fetcher: an object's parts, fetched in parallel into one sink.

File downloads (``_download``) and ordered streams (``_stream``) both fetch
their bytes here; they differ only in the sink (a temp file, written at
offsets, or an ordered stream's window) and in what they do around it.

The algorithm
-------------
1. **Plan.** The object is cut into parts (8 MiB by default, grown so that
   no object needs more than 10,000) and up to ``concurrency`` workers take
   parts from a queue, largest-offset-last, so the file fills roughly in
   order and the ordered hasher (MD5/SHA) can follow right behind.
2. **Stream to the sink.** A worker reserves one stream's worth of the
   memory budget, asks the transport for the part's bytes (``Transport.get``:
   for a file, "these bytes, at their offsets"; for a window, "an in-order
   stream"), checks the status, ``Content-Range``, ETag and version
   (``planning._answers``), then puts each chunk the socket delivers at its
   offset. There is one body loop (:meth:`PartFetcher.deliver`) whichever
   HTTP client the transport chose: for a temp file it runs on a worker
   thread, where ``recv_into``, ``pwrite`` and the CRC release the GIL, so
   the bytes never pass through the event loop and the kernel's copies run
   on every core (``transport._blocking``); an ordered stream is read on the
   loop (``transport._loop``). A stream holds one read buffer, so memory does not
   grow with the part size. Under a bandwidth limit each chunk, once read,
   waits for its share of the client's one token bucket (``_bandwidth``).
3. **Survive.** A failed attempt is translated, classified and handed to the
   retry driver (``_retrying``). The retry resumes at the first byte not yet
   written: a reset at 90 % of a part costs 10 % of a part. Attempts that
   made real progress do not count against ``max_attempts``. A body that
   slows below the stall floor (``planning._stall``, judged on network-wait
   time only) is abandoned and resumed like a reset one. A server that
   ignores ``Range`` (200 instead of 206) is detected on the first such
   answer; the object is then fetched again as one plain GET.
4. **Verify.** Per-part CRCs are combined; MD5/SHA are computed by the
   ordered hasher as the file fills (see ``_checksums``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol

from .._checksums import (
    Check,
    OrderedHasher,
    RunningCrc,
    combine_crcs,
    digest_text,
    mismatch_error,
)
from .._config import MiB, TransferConfig
from .._errors import NetworkError, ProtocolError, S3PullError
from .._events import Events
from .._results import ObjectInfo
from .._source import Source
from ..planning import Part, RangeIgnored, StallMeter, check_answer, choose_concurrency
from ..sinks import Journal, TempFile
from ..transport import Response, Transport
from ._bandwidth import NAP, Throttle
from ._budget import MemoryBudget
from ._retrying import Retrier

#: Progress events are sent at most once per this many bytes per object.
PROGRESS_STEP = 1 * MiB


class Sink(Protocol):
    """An ordered stream's window: where its parts' bytes go.

    ``put`` receives every body chunk at its offset in the object and must
    take all of it without waiting (a chunk it keeps, it copies unless it is
    ``bytes``). ``room`` waits until bytes from ``offset`` on may be put: it
    is awaited before a part's GET and before every chunk is put, which is
    how a full window holds the body back. Bytes are put again only after a
    failure, at the same offsets and with the same content (every part is
    pinned to one version).
    """

    def put(self, data: memoryview | bytes, offset: int) -> None: ...

    async def room(self, offset: int) -> None: ...


class ObjectDownload:
    """The mutable state of one object's download, shared by its part workers.

    Its bytes go to exactly one of ``file``, the temp file (the ordered
    MD5/SHA hasher and the resume journal read and sync it), or ``window``,
    an ordered stream's sink.
    """

    def __init__(
        self,
        source: Source,
        info: ObjectInfo,
        check: Check | None,
        *,
        file: TempFile | None = None,
        window: Sink | None = None,
    ) -> None:
        assert (file is None) != (window is None), "a file or a window"
        self.source = source
        self.redacted = source.redacted
        self.info = info
        self.size = info.size
        # A weak ETag (W/"...") never matches If-Match, so it cannot pin anything.
        etag = info.etag
        self.etag = etag if etag and not etag.startswith("W/") else None
        self.version_id = info.version_id
        self.file = file
        self.window = window
        #: The stream is read in order (into a window), not into a file at offsets.
        self.ordered = window is not None
        #: Writes a body chunk at its offset, on whichever thread reads the body.
        self.put: Callable[[memoryview | bytes, int], None]
        if file is not None:
            self.put = file.pwrite
        else:
            assert window is not None
            self.put = window.put
        self.check = check
        self.attempts = 0
        #: Failures of a GET of part 0 before this download (the object's
        #: first, plain GET): part 0's GETs go on counting from them.
        self.failed_first = 0
        self.done = 0
        self.reported = 0
        self.parts: list[Part] = []
        self.crcs: list[RunningCrc] | None = None
        self.hasher: OrderedHasher | None = None
        self.journal: Journal | None = None
        #: Bytes kept from a crashed run's temp file.
        self.resumed = 0
        self._completed: set[int] = set()
        self._next = 0

    def start(self, parts: list[Part]) -> list[Part]:
        """(Re)start with ``parts``; return those still to fetch.

        Parts the journal holds from a crashed run count as done (their CRCs
        restored); anything else learnt about earlier parts is dropped.
        """
        self.parts = parts
        self._completed.clear()
        self._next = 0
        if self.check is not None and self.check.is_crc:
            self.crcs = [RunningCrc(self.check.algorithm) for _ in parts]
        elif self.check is not None:
            assert self.file is not None, "an MD5/SHA check reads the temp file"
            if self.hasher is not None:
                self.hasher.close()
            self.hasher = OrderedHasher(self.check.algorithm, self.file.fd, self.size)
        kept = self.journal.parts if self.journal is not None else {}
        missing = []
        for part in parts:
            if part.index not in kept:
                missing.append(part)
                continue
            if self.crcs is not None:
                crc = self.crcs[part.index]
                crc.value, crc.length = kept[part.index] or 0, part.length
            self.resumed += part.length
            self.part_finished(part)
        self.done = self.reported = self.resumed
        return missing

    def part_finished(self, part: Part) -> None:
        self._completed.add(part.index)
        while self._next in self._completed:
            self._next += 1
        if self.hasher is not None:
            contiguous = self.parts[self._next].first if self._next < len(self.parts) else self.size
            self.hasher.advance(contiguous)
        if self.journal is not None and part.index not in self.journal.parts:
            assert self.file is not None
            crc = self.crcs[part.index].value if self.crcs is not None else None
            self.journal.record(part.index, crc, self.file.fd)

    async def forget_journal(self) -> None:
        """Stop journaling: the plan changed, the parts no longer mean anything.

        A write already under way is waited for, or it would bring the journal back.
        """
        if self.journal is not None:
            await self.journal.close()
            self.journal.remove()
            self.journal = None

    async def close(self, *, keep_journal: bool) -> None:
        if self.hasher is not None:
            self.hasher.close()
        if self.journal is not None:
            await self.journal.close()
            if not keep_journal:
                self.journal.remove()


class BudgetedGet:
    """``async with``: a GET with its share of the memory budget, taken before
    the request is sent and given back after its body; the block gets the
    response. :meth:`keep_open`, inside the block, leaves both to be closed
    later by :meth:`aclose` (a :class:`FirstGet`) rather than at its end.

    One object rather than two context managers in an ``AsyncExitStack``:
    every small object's GET enters one, and the stack's bookkeeping cost
    more than the reservation and the GET's own exit.
    """

    __slots__ = ("_budget", "_closed", "_get", "_kept", "_size")

    def __init__(
        self, budget: MemoryBudget, size: int, get: AbstractAsyncContextManager[Response]
    ) -> None:
        self._budget = budget
        self._size = size
        self._get = get
        self._kept = False
        self._closed = False

    async def __aenter__(self) -> Response:
        if not self._budget.take_now(self._size):
            await self._budget.acquire(self._size)  # a cancelled wait takes nothing
        try:
            return await self._get.__aenter__()
        except BaseException:
            self._budget.release(self._size)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._kept:
            return None
        return await self._close(exc_type, exc, traceback)

    def keep_open(self) -> BudgetedGet:
        """Leave the GET open when the block ends (its exception, if any, goes on)."""
        self._kept = True
        return self

    async def aclose(self) -> None:
        """Close the GET and give its bytes back; again: nothing."""
        await self._close(None, None, None)

    async def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._closed:
            return None
        self._closed = True
        try:
            return await self._get.__aexit__(exc_type, exc, traceback)
        finally:
            self._budget.release(self._size)


class FirstGet:
    """A download's first, plain GET of an object larger than one part, its
    headers read and its body not: entered (``async with``) by the part that
    reads it; closing it closes its connection (the body goes on past that
    part) and gives back its share of the memory budget."""

    def __init__(self, info: ObjectInfo, response: Response, get: BudgetedGet) -> None:
        self.info = info
        self.response = response
        self._get = get

    async def close(self) -> None:
        await self._get.aclose()

    async def __aenter__(self) -> Response:
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class PartFetcher:
    """Fetches the parts of one object at a time into its sink; see the module docstring.

    Args:
        config: part size, concurrency, timeouts, stream cost.
        transport: the GETs.
        budget: the client's memory budget.
        retrier: the client's retry driver.
        events: where progress goes.
        throttle: the client's bandwidth limit, or None.
    """

    def __init__(
        self,
        config: TransferConfig,
        transport: Transport,
        budget: MemoryBudget,
        retrier: Retrier,
        events: Events,
        throttle: Throttle | None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.budget = budget
        self.retrier = retrier
        self.events = events
        self.throttle = throttle

    async def fetch_all(
        self,
        state: ObjectDownload,
        missing: list[Part],
        *,
        first: FirstGet | None = None,
    ) -> None:
        """Fetch ``missing`` parts concurrently into ``state``'s sink.

        An ordered stream's window is waited for before a part's GET is sent.
        ``first``: the download's first, plain GET, whose body is part 0's
        first attempt.
        """
        if state.resumed:
            self.events.progress(state.redacted, state.done, state.size)
        if not missing:
            return
        try:
            await self._run_parts(state, deque(missing), first)
        except RangeIgnored:
            # Everything written so far is thrown away: the server sends the
            # whole object whatever we ask, so fetch it once, in one stream.
            await state.forget_journal()
            state.resumed = 0
            whole = Part(0, 0, state.size - 1)
            state.start([whole])
            self.events.progress(state.redacted, 0, state.size)
            await self._fetch_part(state, whole, ranged=False)

    async def _run_parts(
        self, state: ObjectDownload, queue: deque[Part], first: FirstGet | None
    ) -> None:
        workers = choose_concurrency(len(queue), self.config.concurrency, self.config.max_streams)
        window = state.window

        async def worker() -> None:
            nonlocal first
            if first is not None and queue and queue[0].first == 0:
                # Part 0's body is already arriving; the other workers send
                # the GETs of the parts after it meanwhile.
                opened, first = first, None
                await self._fetch_part(state, queue.popleft(), ranged=True, first=opened)
            while queue:
                part = queue.popleft()
                if window is not None:
                    await window.room(part.first)
                await self._fetch_part(state, part, ranged=True)

        if workers == 1:
            await worker()
            return
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except BaseExceptionGroup as failures:
            raise first_cause(failures) from None

    async def _fetch_part(
        self, state: ObjectDownload, part: Part, *, ranged: bool, first: FirstGet | None = None
    ) -> None:
        """Fetch ``part`` into the sink, resuming after failures at the first missing byte.

        ``first``: the first attempt's answer, already in (the download's
        plain GET, whose body is cut at the end of ``part``).
        """
        position = part.first
        crc = state.crcs[part.index] if state.crcs is not None else None
        failures = 0
        if part.first == 0:
            failures, state.failed_first = state.failed_first, 0
        stream_cost = self.config.stream_cost
        while True:
            attempt_start = position
            try:
                if first is not None:
                    opened, first = first, None
                    async with opened as response:
                        check_answer(state, response, 0, state.size - 1, ranged=False)
                        position = await self.deliver(
                            state, response, position, part.last, crc, cut=True
                        )
                    break
                async with self.budget.reserve(stream_cost):
                    state.attempts += 1
                    start, last = (position, part.last) if ranged else (None, None)
                    async with self.transport.get(
                        state.source, start, last, if_match=state.etag, ordered=state.ordered
                    ) as response:
                        check_answer(state, response, position, part.last, ranged=ranged)
                        position = await self.deliver(state, response, position, part.last, crc)
                break
            except StreamFailed as failed:
                position = failed.position
                error = failed.error
            except S3PullError as exc:
                error = exc
            if not ranged and position > part.first:
                # No Range support means no resume: start this stream over.
                state.done -= position - part.first
                self.events.progress(state.redacted, state.done, state.size)
                position = part.first
                if crc is not None:
                    crc.value = crc.length = 0
            elif position - attempt_start >= self.config.retry.progress_reset:
                failures = 0  # it was making progress: keep going as long as that lasts
            failures += 1
            await self.retrier.failed(
                state.redacted,
                error,
                failures=failures,
                attempts=state.attempts,
                span=(part.first, part.last),
            )
        self.retrier.succeeded()
        state.part_finished(part)

    async def deliver(
        self,
        state: ObjectDownload,
        response: Response,
        position: int,
        last: int,
        crc: RunningCrc | None,
        *,
        cut: bool = False,
    ) -> int:
        """Put the body at ``position``..``last`` into the sink; return the next position.

        The one body loop: ``consume`` runs for every chunk on whichever
        thread the transport's HTTP client reads on (a worker thread for a
        file, where ``pwrite`` and the CRC release the GIL; the event loop
        for an ordered stream); the loop hears of progress once per
        ``PROGRESS_STEP``. Stalls are judged on the time spent waiting for
        the network only (``planning._stall``); the bandwidth limit and a
        full window hold the body back between reads (``_Pace``).

        ``cut``: the body goes on past ``last`` (a plain GET of a larger
        object): stop there; the connection is then closed, not reused.

        Raises:
            StreamFailed: with the position reached, so the retry resumes there.
        """
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        stall = StallMeter(self.config.timeouts)
        end = last + 1
        waited = 0.0
        told = position  # the position the loop has counted in state.done
        put = state.put

        def consume(chunk: memoryview | bytes, wait: float) -> None:
            nonlocal position, waited, told
            size = len(chunk)
            if position + size > end:
                if not cut:
                    raise ProtocolError(f"the server sent more than bytes {position}-{last}")
                chunk = chunk[: end - position]
                size = len(chunk)
            put(chunk, position)
            if crc is not None:
                crc.update(chunk)
            position += size
            waited += wait
            stall.add(waited, size)
            if position - told >= PROGRESS_STEP:
                if threading.get_ident() == loop_thread:
                    self._advance(state, position - told)
                else:
                    loop.call_soon_threadsafe(self._advance, state, position - told)
                told = position
            if cut and position == end:
                raise _Enough

        pace: _Pace | Throttle | None = self.throttle
        if state.window is not None:
            pace = _Pace(self.throttle, state.window, lambda: position, loop)
        try:
            # The GET's whole charge, or less for a shorter body.
            buffer_size = max(1, min(self.config.stream_cost, end - position))
            try:
                await response.pump(consume, buffer_size, pace)
            except _Enough:
                pass
            except S3PullError:
                if position <= last:
                    raise
                # Every byte asked for is here: what broke after is not ours.
            if position <= last:
                raise NetworkError(f"the body ended at byte {position}, expected {end}")
        except S3PullError as error:
            raise StreamFailed(error, position) from error
        finally:
            # The reader is done: what it posted to the loop has run before this resumed.
            self._advance(state, position - told)
        return position

    def _advance(self, state: ObjectDownload, size: int) -> None:
        """Count ``size`` more bytes of ``state`` written; tell about it once a MiB."""
        state.done += size
        if state.done - state.reported >= PROGRESS_STEP or state.done == state.size:
            state.reported = state.done
            self.events.progress(state.redacted, state.done, state.size)

    async def verify(self, state: ObjectDownload) -> str | None:
        """Check the object's checksum; return its algorithm, or None if unchecked."""
        check = state.check
        if check is None:
            return None
        if state.crcs is not None:
            actual = combine_crcs(check.algorithm, state.crcs)
        else:
            assert state.hasher is not None
            actual = digest_text(check.algorithm, await state.hasher.finish())
        if actual != check.expected:
            raise mismatch_error(check, actual, source=state.redacted, attempts=state.attempts)
        return check.algorithm


class _Pace:
    """Between two reads of an ordered stream's body: the bandwidth limit,
    then room in the window for the chunk just read, whose first byte is
    at ``position()``."""

    def __init__(
        self,
        throttle: Throttle | None,
        window: Sink,
        position: Callable[[], int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._throttle = throttle
        self._window = window
        self._position = position
        self._loop = loop

    async def wait(self, size: int) -> None:
        if self._throttle is not None:
            await self._throttle.wait(size)
        await self._window.room(self._position())

    def wait_blocking(self, size: int, stop: Callable[[], bool]) -> None:
        # Ordered streams are read on the loop; were one read on a worker
        # thread, its window would be waited for on the loop, in naps, so that
        # an abort (the loop blocked, waiting for this thread) ends the wait.
        if self._throttle is not None:
            self._throttle.wait_blocking(size, stop)
        room = asyncio.run_coroutine_threadsafe(self._window.room(self._position()), self._loop)
        while not stop():
            try:
                room.result(timeout=NAP)
                return
            except concurrent.futures.TimeoutError:
                continue
        room.cancel()


class _Enough(Exception):
    """Stops reading a plain GET's body at the end of the part it serves."""


class StreamFailed(Exception):
    """Carries how far a failed body got, so the retry resumes from there."""

    def __init__(self, error: S3PullError, position: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.position = position


def first_cause(group: BaseExceptionGroup) -> BaseException:
    """The error to report from failed part workers: the first real one."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
