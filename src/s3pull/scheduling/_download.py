"""Downloading one object: parallel ranged GETs straight into a temp file.

The algorithm
-------------
1. **Ask what the object is.** An S3 object of unknown size starts with one
   plain GET (checksums asked for, ``versionId`` when a version was asked
   for); its headers tell all a HEAD would. It must be unranged: S3 sends
   the full-object checksums only on a GET without ``Range``. An object that
   fits in one part is read to its end (step 6): one request. For a larger
   one the parts are planned as soon as the headers are in: the first
   worker reads part 0 from that GET's body and then closes it, while the
   others send the ranged GETs of the parts after it (a failure in part 0
   resumes with a ranged GET, as any part's). What the server had sent past
   part 0 when it is closed is wasted, once per object: at most what the
   sender's and the receiver's socket buffers hold (``tcp_wmem`` /
   ``tcp_rmem`` maxima, 4 + 32 MiB here; the receive buffer auto-tunes up
   while part 0 is read fast). Measured on loopback with the fault server,
   64 MiB with 8 MiB parts, 8 runs: 2 to 7 MiB (median 4 MiB). A
   destination a crashed run left a journal for gets a HEAD instead, so
   that only the missing parts are fetched (step 7); so does a restart
   after the object changed. HTTP sources, often presigned for GET only,
   keep their GET of byte 0 (a separate probe: not unified). The answer
   fixes the size, the ETag and the version every later request is pinned
   to (``If-Match`` and ``versionId``), so parts of two different versions
   can never be stitched together.
2. **Plan.** The object is cut into parts (8 MiB by default, grown so that
   no object needs more than 10,000) and up to ``concurrency`` workers take
   parts from a queue, largest-offset-last, so the file fills roughly in
   order and the ordered hasher (MD5/SHA) can follow right behind.
3. **Stream to disk.** A worker reserves one stream's worth of the memory
   budget, sends a ranged GET, checks the status, ``Content-Range``, ETag
   and version, then writes each chunk the socket delivers at its offset
   with ``os.pwrite``. For a temp file the GET is sent and its body read,
   written and checksummed on a worker thread, so the bytes never pass
   through the event loop and the kernel's copies run on every core
   (``transport._blocking``); an ordered stream reads through aiohttp. A
   stream holds one read buffer, so memory does not grow with the part size.
   Under a bandwidth limit each chunk, once read, waits for its share of the
   client's one token bucket (``_bandwidth``).
4. **Survive.** A failed attempt is translated, classified and handed to the
   pure retry policy. The retry resumes at the first byte not yet written:
   a reset at 90 % of a part costs 10 % of a part. Attempts that made real
   progress do not count against ``max_attempts``. A body that slows below
   the stall floor is abandoned and resumed like a reset one. A server that
   ignores ``Range`` (200 instead of 206) is detected on the first such
   answer; the download then restarts as one plain GET.
5. **Verify and publish.** Sizes are implied by the checked ranges; checksums
   are verified as ``_checksums`` describes; then the temp file is fsynced
   and renamed over the destination, on a worker thread
   (``TempFile.finish``). Any exception or cancellation before
   that removes the temp file and leaves the destination untouched. A
   checksum mismatch starts the download over once; so does a changed
   object when ``on_change="restart"``.
6. **Small objects take one GET.** When a listing or an inventory already
   told the size and ETag and the object fits in one part, or when nothing
   is known and the first GET's headers show it fits (step 1), there is no
   HEAD: one plain GET (pinned to the listed ETag, checksums asked for)
   brings the body and, in its headers, everything the check needs (read on
   a worker thread above ``THREADED_BODY_ABOVE`` or when the size was not
   known, through aiohttp below). If that GET fails for a reason worth
   retrying, or the object changed since it was listed, the download
   continues down the normal path above.
7. **Survive a crash.** Multi-part downloads keep a journal of the parts
   that are durably in the temp file (``sinks._journal``). Running the same
   download after a ``kill -9`` reopens that temp file and fetches only the
   missing parts; a changed object starts from zero.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .._checksums import (
    Check,
    OrderedHasher,
    RunningCrc,
    choose_check,
    combine_crcs,
    digest_text,
    mismatch_error,
)
from .._config import MiB, Timeouts, TransferConfig
from .._errors import (
    IntegrityError,
    NetworkError,
    ObjectChangedError,
    ProtocolError,
    S3PullError,
    TimeoutError,
)
from .._events import Events
from .._results import DownloadResult, ObjectInfo
from .._source import S3Source, Source
from ..planning._ranges import Part, choose_concurrency, choose_part_size, plan_parts
from ..planning._retry import GiveUp, RetryBudget, decide
from ..sinks import (
    Directory,
    Identity,
    Journal,
    TempFile,
    find_resumable,
    journal_name,
    journal_names,
    remove_stale,
    temp_prefix,
)
from ..transport import BlockingResponse, ListedObject, ResponseHead, Transport
from ._bandwidth import Throttle
from ._budget import MemoryBudget

if TYPE_CHECKING:
    from ..transport._aio import Response

#: Progress events are sent at most once per this many bytes per object.
PROGRESS_STEP = 1 * MiB
#: A listed object fetched with one GET has its body read on a worker thread
#: when it is larger than this; a smaller one goes through aiohttp, whose
#: request costs the event loop less than a thread's hand-offs do. Measured
#: (bench/PROFILE.md): aiohttp ahead up to 1 MiB, threads from 2 MiB on.
THREADED_BODY_ABOVE = 1 * MiB

Sleep = Callable[[float], Awaitable[None]]


class Sink(Protocol):
    """Where a download's bytes go: a temp file, or an ordered stream's window.

    ``write`` receives every body chunk at its offset in the object. It may
    wait (an ordered stream applies back-pressure that way) but must take all
    of ``data``. Bytes are written again only after a failure, at the same
    offsets and with the same content (every part is pinned to one version).
    """

    async def write(self, data: bytes, offset: int) -> None: ...


class _RangeIgnored(Exception):
    """A ranged GET came back 200 with the whole object: the server ignores Range."""


class ObjectDownload:
    """The mutable state of one object's download, shared by its part workers.

    ``file`` is the temp file when there is one: the ordered MD5/SHA hasher
    and the resume journal read and sync it. An ordered stream has none.
    """

    def __init__(
        self,
        source: Source,
        info: ObjectInfo,
        sink: Sink,
        check: Check | None,
        file: TempFile | None = None,
    ) -> None:
        self.source = source
        self.redacted = source.redacted
        self.info = info
        self.size = info.size
        # A weak ETag (W/"...") never matches If-Match, so it cannot pin anything.
        etag = info.etag
        self.etag = etag if etag and not etag.startswith("W/") else None
        self.version_id = info.version_id
        self.sink = sink
        self.file = file
        self.check = check
        self.attempts = 0
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


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a download lands: the file, and the batch's destination
    directory it must stay inside (None: the caller named the file)."""

    file: Path
    root: Path | None

    def directory(self) -> Directory:
        """The file's directory, open, made if missing; through no symbolic
        link below ``root``."""
        return Directory.open(self.file.parent, root=self.root)


class Downloader:
    """Downloads single objects for a client; see the module docstring.

    Args:
        config: part size, concurrency, timeouts, retries.
        transport: HEAD / GET.
        budget: the client's memory budget.
        retry_budget: the client's shared retry tokens.
        events: where progress goes.
        sleep: injected so tests of backoff do not sleep for real.
        clock: a monotonic clock, injected likewise.
    """

    def __init__(
        self,
        config: TransferConfig,
        transport: Transport,
        budget: MemoryBudget,
        retry_budget: RetryBudget,
        events: Events,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.transport = transport
        self.budget = budget
        self.retry_budget = retry_budget
        self.events = events
        self.sleep = sleep
        self.clock = clock
        #: The client's bandwidth limit, shared by every stream of every object.
        self.throttle = (
            Throttle(config.max_bandwidth, config.stream_cost) if config.max_bandwidth else None
        )
        self._cleaned: set[Path] = set()
        #: Per destination directory: the journals crashed runs left there.
        self._journals: dict[Path, frozenset[str]] = {}

    async def stat(self, source: Source) -> ObjectInfo:
        """HEAD (or probe) ``source``, retrying transient failures."""
        info, _ = await self._stat(source)
        return info

    async def _stat(self, source: Source) -> tuple[ObjectInfo, int]:
        attempts = 0
        while True:
            attempts += 1
            try:
                info = await self.transport.head(source)
            except S3PullError as error:
                await self.after_failure(source.redacted, error, attempts, attempts, None)
                continue
            self.retry_budget.refund()
            return info, attempts

    async def download(
        self,
        source: Source,
        destination: Path,
        *,
        info: ObjectInfo | None = None,
        listed: ListedObject | None = None,
        root: Path | None = None,
    ) -> DownloadResult:
        """Download ``source`` to ``destination`` atomically; see the module docstring.

        Args:
            source: what to download.
            destination: the final file path (its directory is created).
            info: a previous stat of the object, to skip the HEAD.
            listed: what a listing said about it: a small object is then
                fetched with one GET and no HEAD.
            root: a batch's destination directory, which ``destination`` is
                inside: no symbolic link between the two is followed
                (see ``sinks._directory``).

        Returns:
            The :class:`DownloadResult`.

        Raises:
            S3PullError: the download failed; the destination is untouched.
        """
        started = self.clock()
        await self._clean_stale(destination.parent, root)
        target = _Target(destination, root)
        try:
            async with asyncio.timeout(self.config.timeouts.total):
                result = await self._download_restarting(source, target, info, listed, started)
        except S3PullError as error:
            self.events.error(source.redacted, error)
            raise
        except builtins.TimeoutError as exc:  # the overall deadline
            deadline = TimeoutError(
                f"the download did not finish within {self.config.timeouts.total} s",
                source=source.redacted,
            )
            self.events.error(source.redacted, deadline)
            raise deadline from exc
        self.events.done(result)
        return result

    async def _download_restarting(
        self,
        source: Source,
        target: _Target,
        info: ObjectInfo | None,
        listed: ListedObject | None,
        started: float,
    ) -> DownloadResult:
        """Download; start over from zero once after a checksum mismatch, or after
        the object changed when ``on_change="restart"``.

        S3 checksums cover the whole object (a ranged GET carries none), so a
        mismatch cannot be pinned on one part: the retry is of every byte.
        """
        attempts = 0
        restarted = False
        first: _FirstGet | None = None
        if info is None and await self._starts_with_get(source, listed, target):
            try:
                return await self._download_whole(source, listed, target, started)
            except _Larger as larger:
                # Its headers stand in for the HEAD, its body for part 0.
                info, attempts, first = larger.first.info, 1, larger.first
            except _FastPathFailed as failed:
                attempts = failed.attempts  # on to the HEAD and ranged GETs
                restarted = failed.mismatched  # a checksum mismatch is retried once, not twice
        while True:
            try:
                if info is None:
                    info, stat_attempts = await self._stat(source)
                    # Attempts, not requests: a HEAD that succeeded at once and
                    # the GET after it are one attempt; only its retries count.
                    attempts += stat_attempts - 1
                try:
                    return await self._download(source, info, target, started, attempts, first)
                finally:
                    if first is not None:
                        await first.close()  # unread if no part took it
                        first = None  # a restart asks a HEAD what the object is now
            except (IntegrityError, ObjectChangedError) as error:
                changed = isinstance(error, ObjectChangedError)
                if restarted or (changed and self.config.on_change != "restart"):
                    raise
                restarted = True
                attempts = error.attempts or attempts
                self.events.retry(source.redacted, error, attempts, 0.0)
                if changed:
                    info = None  # learn what the object is now

    async def _download(
        self,
        source: Source,
        info: ObjectInfo,
        target: _Target,
        started: float,
        attempts: int,
        first: _FirstGet | None = None,
    ) -> DownloadResult:
        destination = target.file
        original = source
        if isinstance(source, S3Source) and info.version_id and not source.version_id:
            source = S3Source(source.bucket, source.key, info.version_id)
        check = choose_check(info) if self.config.verify else None
        parts = plan_parts(info.size, choose_part_size(info.size, self.config.part_size))
        self.events.queued(source.redacted, info.size)
        identity = self._identity(original, info, parts, check)
        with target.directory() as directory:
            resumable = None
            if identity is not None:
                prefix = temp_prefix(destination)
                resumable = await asyncio.to_thread(find_resumable, prefix, directory, identity)
            resume = resumable.part_name if resumable else None
            with TempFile(destination, info.size, directory=directory, resume=resume) as file:
                state = ObjectDownload(source, info, file, check, file)
                state.attempts = attempts
                if identity is not None:
                    known = resumable.parts if resumable is not None and file.resumed else {}
                    state.journal = Journal(directory, journal_name(file.name), identity, known)
                try:
                    await self.fetch_all(state, state.start(parts), first=first)
                    verified = await self.verify(state)
                except BaseException:
                    await state.close(keep_journal=False)
                    raise
                await state.close(keep_journal=True)
                await file.finish(mtime=_timestamp(info))
                if state.journal is not None:
                    state.journal.remove()
        return self._result(state, destination, started, verified)

    def _result(
        self, state: ObjectDownload, destination: Path, started: float, verified: str | None
    ) -> DownloadResult:
        info = state.info
        return DownloadResult(
            source=state.source.shown,
            path=destination,
            bytes=info.size,
            seconds=self.clock() - started,
            attempts=max(1, state.attempts),  # a 0-byte object's HEAD is its one
            etag=info.etag,
            version_id=info.version_id,
            verified=verified,
            resumed=state.resumed,
        )

    def _fits_one_part(self, size: int) -> bool:
        return size <= choose_part_size(size, self.config.part_size)

    async def _starts_with_get(
        self, source: Source, listed: ListedObject | None, target: _Target
    ) -> bool:
        """Whether the download starts with one plain GET (step 1 of the module
        docstring) rather than a HEAD.

        A listed object does when it fits in one part. An S3 object of unknown
        size does unless a crashed run may have left a journal for ``target``:
        then a HEAD tells the object's identity before any byte is fetched, so
        that only the missing parts are. HTTP sources keep their probe of byte 0.
        """
        if listed is not None:
            return self._fits_one_part(listed.size)
        if not isinstance(source, S3Source):
            return False
        if not self.config.resume:
            return True
        directory = target.file.parent
        journals = self._journals.get(directory)
        if journals is None:  # listed once per directory per client
            journals = await asyncio.to_thread(journal_names, directory, root=target.root)
            self._journals[directory] = journals
        prefix = temp_prefix(target.file)
        return not any(name.startswith(prefix) for name in journals)

    async def _download_whole(
        self, source: Source, listed: ListedObject | None, target: _Target, started: float
    ) -> DownloadResult:
        """One plain GET for an object that fits in one part, or may; see steps
        1 and 6 of the module docstring. ``listed``: what a listing said (size
        and ETag), or None when nothing is known.

        Raises:
            _Larger: (nothing was listed) the object is larger than one part;
                it carries the GET, its headers read, its body not yet.
            _FastPathFailed: go on with a HEAD and ranged GETs (after the
                retry policy's backoff, when the failure was transient).
            S3PullError: a failure no retry can fix (404, 403...).
        """
        etag = listed.etag if listed is not None else None
        etag = etag if etag and not etag.startswith("W/") else None
        redacted = source.redacted
        destination = target.file
        # An unknown size may be large: its body goes to a worker thread, on
        # the connections the ranged GETs of a larger object then use.
        threaded = listed is None or listed.size > THREADED_BODY_ABOVE
        get = self.transport.get_threaded if threaded else self.transport.get
        # The temp file is made once the size is known, and outlives the GET.
        with target.directory() as directory, contextlib.ExitStack() as files:
            state: ObjectDownload | None = None
            try:
                async with contextlib.AsyncExitStack() as opened:
                    await opened.enter_async_context(self.budget.reserve(self.config.stream_cost))
                    response: Response | BlockingResponse = await opened.enter_async_context(
                        get(source, if_match=etag, checksum_mode=True)
                    )
                    info = self.transport.info_from_response(source, response)
                    if listed is None and not self._fits_one_part(info.size):
                        assert isinstance(response, BlockingResponse), "unknown sizes go threaded"
                        self.retry_budget.refund()
                        raise _Larger(_FirstGet(info, response, opened.pop_all()))
                    if listed is not None and info.size != listed.size:
                        raise ObjectChangedError(
                            f"listed with {listed.size} bytes, now {info.size}", source=redacted
                        )
                    file = files.enter_context(
                        TempFile(destination, info.size, directory=directory)
                    )
                    check = choose_check(info) if self.config.verify else None
                    state = ObjectDownload(source, info, file, check, file)
                    state.attempts = 1
                    parts = plan_parts(info.size, max(info.size, 1))
                    state.start(parts)
                    self.events.queued(redacted, info.size)
                    self._check_response(state, response, 0, info.size - 1, ranged=False)
                    crc = state.crcs[0] if state.crcs else None
                    await self._stream(state, response, 0, info.size - 1, crc)
                self.retry_budget.refund()
                for part in parts:
                    state.part_finished(part)
                verified = await self.verify(state)
            except (S3PullError, _StreamFailed) as exc:
                if state is not None:
                    await state.close(keep_journal=False)
                error = exc.error if isinstance(exc, _StreamFailed) else exc
                if not isinstance(error, ObjectChangedError | IntegrityError):
                    # Raises what no retry can fix; otherwise backs off.
                    await self.after_failure(redacted, error, 1, 1, None)
                raise _FastPathFailed(
                    attempts=1, mismatched=isinstance(error, IntegrityError)
                ) from error
            except BaseException:
                if state is not None:
                    await state.close(keep_journal=False)
                raise
            await state.close(keep_journal=False)
            await file.finish(mtime=_timestamp(info))
        return self._result(state, destination, started, verified)

    def _identity(
        self, source: Source, info: ObjectInfo, parts: list[Part], check: Check | None
    ) -> Identity | None:
        """What a resume journal must match; None when this download keeps none.

        Only multi-part downloads of an object pinned by an ETag or a version
        are journaled: nothing else could be safely resumed.
        """
        pinned = info.version_id or (info.etag and not info.etag.startswith("W/"))
        if not self.config.resume or len(parts) < 2 or not pinned:
            return None
        return Identity(
            source=source.redacted,
            etag=info.etag,
            version_id=info.version_id,
            size=info.size,
            part_size=parts[0].length,
            checksum=check.algorithm if check is not None else None,
        )

    async def _clean_stale(self, directory: Path, root: Path | None) -> None:
        """Remove crashed runs' leftovers from a destination directory, once per
        directory per client, if they are older than ``stale_age``."""
        age = self.config.stale_age
        if age is None or directory in self._cleaned:
            return
        self._cleaned.add(directory)
        await asyncio.to_thread(remove_stale, directory, age, root=root, now=time.time())

    async def fetch_all(
        self,
        state: ObjectDownload,
        missing: list[Part],
        *,
        before_part: Callable[[Part], Awaitable[None]] | None = None,
        first: _FirstGet | None = None,
    ) -> None:
        """Fetch ``missing`` parts concurrently into ``state.sink``.

        ``before_part`` is awaited before a part's GET is sent (an ordered
        stream waits there for room in its window). ``first``: the download's
        first, plain GET, whose body is part 0's first attempt.
        """
        if state.resumed:
            self.events.progress(state.redacted, state.done, state.size)
        if not missing:
            return
        try:
            await self._run_parts(state, deque(missing), before_part, first)
        except _RangeIgnored:
            # Everything written so far is thrown away: the server sends the
            # whole object whatever we ask, so fetch it once, in one stream.
            await state.forget_journal()
            state.resumed = 0
            whole = Part(0, 0, state.size - 1)
            state.start([whole])
            self.events.progress(state.redacted, 0, state.size)
            await self._fetch_part(state, whole, ranged=False)

    async def _run_parts(
        self,
        state: ObjectDownload,
        queue: deque[Part],
        before_part: Callable[[Part], Awaitable[None]] | None,
        first: _FirstGet | None,
    ) -> None:
        workers = choose_concurrency(len(queue), self.config.concurrency, self.config.max_streams)

        async def worker() -> None:
            nonlocal first
            if first is not None and queue and queue[0].first == 0:
                # Part 0's body is already arriving; the other workers send
                # the GETs of the parts after it meanwhile.
                opened, first = first, None
                await self._fetch_part(state, queue.popleft(), ranged=True, first=opened)
            while queue:
                part = queue.popleft()
                if before_part is not None:
                    await before_part(part)
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
        self, state: ObjectDownload, part: Part, *, ranged: bool, first: _FirstGet | None = None
    ) -> None:
        """Fetch ``part`` into the file, resuming after failures at the first missing byte.

        ``first``: the first attempt's answer, already in (the download's
        plain GET, whose body is cut at the end of ``part``).
        """
        position = part.first
        crc = state.crcs[part.index] if state.crcs is not None else None
        failures = 0
        stream_cost = self.config.stream_cost
        while True:
            attempt_start = position
            try:
                if first is not None:
                    opened, first = first, None
                    async with opened as response:
                        self._check_response(state, response, 0, state.size - 1, False)
                        assert state.file is not None, "a first GET is only kept for a temp file"
                        position = await self._stream_threaded(
                            state, response, position, part.last, crc, state.file, cut=True
                        )
                    break
                async with self.budget.reserve(stream_cost):
                    state.attempts += 1
                    start, last = (position, part.last) if ranged else (None, None)
                    get = self.transport.get if state.file is None else self.transport.get_threaded
                    async with get(state.source, start, last, if_match=state.etag) as response:
                        self._check_response(state, response, position, part.last, ranged)
                        position = await self._stream(state, response, position, part.last, crc)
                break
            except _StreamFailed as failed:
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
            await self.after_failure(
                state.redacted, error, failures, state.attempts, (part.first, part.last)
            )
        self.retry_budget.refund()
        state.part_finished(part)

    def _check_response(
        self, state: ObjectDownload, response: ResponseHead, first: int, last: int, ranged: bool
    ) -> None:
        if response.status == 206 and response.content_range is not None:
            got_first, got_last, total = response.content_range
            if total is not None and total != state.size:
                raise ObjectChangedError(
                    f"the object's size changed from {state.size} to {total} bytes"
                )
            if (got_first, got_last) != (first, last):
                raise ProtocolError(
                    f"asked for bytes {first}-{last} but the server sent {got_first}-{got_last}"
                )
        elif ranged and (first, last) != (0, state.size - 1):
            raise _RangeIgnored
        elif response.content_length is not None and response.content_length != state.size:
            raise ObjectChangedError(
                f"the object's size changed from {state.size} to {response.content_length} bytes"
            )
        etag = response.etag
        if state.etag is not None and etag is not None and etag != state.etag:
            raise ObjectChangedError(f"the ETag changed from {state.etag} to {etag}")
        version = response.headers.get("x-amz-version-id")
        if state.version_id is not None and version is not None and version != state.version_id:
            raise ObjectChangedError(f"the version changed from {state.version_id} to {version}")

    async def _stream(
        self,
        state: ObjectDownload,
        response: Response | BlockingResponse,
        position: int,
        last: int,
        crc: RunningCrc | None,
    ) -> int:
        """Write the body at ``position``..``last``; return the next position.

        One ``read`` and one sink write per socket chunk, or for a temp file
        the same on a worker thread (:meth:`_stream_threaded`). Stalls are
        judged on the time spent waiting for the network only, so a busy
        event loop, a slow disk or the bandwidth limit (``_bandwidth``)
        never looks like a slow server; a body
        that stops outright is caught by the read timeout, which a stall
        floor shortens to ``stall_window`` (``Timeouts.silence_s``).
        """
        if isinstance(response, BlockingResponse):
            assert state.file is not None, "threaded GETs are only asked for temp files"
            return await self._stream_threaded(state, response, position, last, crc, state.file)
        read = response.read
        write = state.sink.write
        clock = self.clock
        throttle = self.throttle
        stall = _StallMeter(self.config.timeouts)
        waited = 0.0
        try:
            while True:
                before = clock()
                try:
                    data = await read()
                except S3PullError:
                    if position > last:
                        break  # every byte asked for is here: what broke after is not ours
                    raise
                waited += clock() - before
                if not data:
                    break
                size = len(data)
                if throttle is not None:
                    await throttle.wait(size)  # after the read: not network wait
                if position + size > last + 1:
                    raise ProtocolError(f"the server sent more than bytes {position}-{last}")
                await write(data, position)
                if crc is not None:
                    crc.update(data)
                position += size
                self._advance(state, size)
                stall.add(waited, size)
            if position <= last:
                raise NetworkError(f"the body ended at byte {position}, expected {last + 1}")
        except S3PullError as error:
            raise _StreamFailed(error, position) from error
        return position

    async def _stream_threaded(
        self,
        state: ObjectDownload,
        response: BlockingResponse,
        position: int,
        last: int,
        crc: RunningCrc | None,
        file: TempFile,
        *,
        cut: bool = False,
    ) -> int:
        """:meth:`_stream` for a temp file, with the per-chunk work on a worker
        thread: ``recv_into``, ``pwrite`` and the CRC release the GIL, so they
        run beside the event loop on another core (``transport._blocking``).
        The loop hears of progress once per ``PROGRESS_STEP``.

        ``cut``: the body goes on past ``last`` (a plain GET of a larger
        object): stop there; the connection is then closed, not reused.
        """
        loop = asyncio.get_running_loop()
        stall = _StallMeter(self.config.timeouts)
        end = last + 1
        waited = 0.0
        told = position  # the position the loop has counted in state.done
        throttle = self.throttle

        def consume(chunk: memoryview, wait: float) -> None:  # on the worker thread
            nonlocal position, waited, told
            size = len(chunk)
            if position + size > end:
                if not cut:
                    raise ProtocolError(f"the server sent more than bytes {position}-{last}")
                chunk = chunk[: end - position]
                size = len(chunk)
            if throttle is not None:
                throttle.wait_blocking(size, lambda: response.aborted)  # not in ``wait``
            file.pwrite(chunk, position)
            if crc is not None:
                crc.update(chunk)
            position += size
            waited += wait
            stall.add(waited, size)
            if position - told >= PROGRESS_STEP:
                loop.call_soon_threadsafe(self._advance, state, position - told)
                told = position
            if cut and position == end:
                raise _Enough

        try:
            # The GET's whole charge, or less for a shorter body.
            with contextlib.suppress(_Enough):
                await response.pump(consume, max(1, min(self.config.stream_cost, end - position)))
            if position <= last:
                raise NetworkError(f"the body ended at byte {position}, expected {end}")
        except S3PullError as error:
            raise _StreamFailed(error, position) from error
        finally:
            # The thread is done: what it posted has run before this resumed.
            self._advance(state, position - told)
        return position

    def _advance(self, state: ObjectDownload, size: int) -> None:
        """Count ``size`` more bytes of ``state`` written; tell about it once a MiB."""
        state.done += size
        if state.done - state.reported >= PROGRESS_STEP or state.done == state.size:
            state.reported = state.done
            self.events.progress(state.redacted, state.done, state.size)

    async def after_failure(
        self,
        redacted: str,
        error: S3PullError,
        failures: int,
        attempts: int,
        span: tuple[int, int] | None,
    ) -> None:
        """Sleep before the next attempt, or raise ``error`` if the policy says give up."""
        decision = decide(self.config.retry, error, failures=failures, budget=self.retry_budget)
        if isinstance(decision, GiveUp):
            error.attempts = attempts
            if error.range is None:
                error.range = span
            if error.source is None:
                error.source = redacted
            raise error
        self.events.retry(redacted, error, attempts, decision.delay)
        await self.sleep(decision.delay)

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


class _StallMeter:
    """Body throughput over a sliding ``stall_window``, in network-wait time.

    The window is kept as ``BUCKETS`` buckets, so a window that began with
    fast bytes cannot excuse a drip after them for long: a stall is seen at
    most one bucket (1/8 window) after it fills a whole window.
    """

    BUCKETS = 8
    __slots__ = ("_bucket", "_counts", "_current", "_floor", "_span", "_window")

    def __init__(self, timeouts: Timeouts) -> None:
        self._window = timeouts.stall_window
        self._span = timeouts.stall_window / self.BUCKETS
        self._floor = timeouts.stall_min_rate * timeouts.stall_window
        self._counts = [0] * self.BUCKETS
        self._bucket = 0  # index (in time) of the bucket being filled
        self._current = 0  # bytes in it so far

    def add(self, waited: float, size: int) -> None:
        """Count ``size`` bytes that arrived after ``waited`` s of network wait."""
        bucket = int(waited / self._span)
        if bucket != self._bucket:
            self._rotate(bucket)
        self._current += size

    def _rotate(self, bucket: int) -> None:
        counts = self._counts
        counts[self._bucket % self.BUCKETS] = self._current
        for skipped in range(self._bucket + 1, min(bucket, self._bucket + self.BUCKETS + 1)):
            counts[skipped % self.BUCKETS] = 0  # buckets no byte arrived in
        self._bucket, self._current = bucket, 0
        # The whole buckets just before this one are exactly one window.
        if self._floor > 0 and bucket >= self.BUCKETS and sum(counts) < self._floor:
            raise TimeoutError(
                f"stalled: {sum(counts)} bytes in the last {self._window:g} s "
                f"(floor {self._floor / self._window:.0f} bytes/s)"
            )


def _timestamp(info: ObjectInfo) -> float | None:
    """The file's modification time: the object's, as ``aws s3 cp`` and s5cmd do,
    so that a later ``skip_existing`` can tell the file is up to date."""
    return info.last_modified.timestamp() if info.last_modified is not None else None


class _FastPathFailed(Exception):
    """The one-GET path for a small listed object failed in a way the normal path may fix."""

    def __init__(self, *, attempts: int, mismatched: bool) -> None:
        super().__init__("fast path failed")
        self.attempts = attempts
        self.mismatched = mismatched


class _FirstGet:
    """A download's first, plain GET of an object larger than one part, its
    headers read and its body not: entered (``async with``) by the part that
    reads it; closing it closes its connection (the body goes on past that
    part) and gives back its share of the memory budget."""

    def __init__(
        self, info: ObjectInfo, response: BlockingResponse, stack: contextlib.AsyncExitStack
    ) -> None:
        self.info = info
        self.response = response
        self._stack = stack

    async def close(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> BlockingResponse:
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Larger(Exception):
    """The first, plain GET found an object larger than one part."""

    def __init__(self, first: _FirstGet) -> None:
        super().__init__("larger than one part")
        self.first = first


class _Enough(Exception):
    """Stops reading a plain GET's body at the end of the part it serves."""


class _StreamFailed(Exception):
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
