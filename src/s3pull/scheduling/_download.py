"""Downloading one object into a file: parallel ranged GETs straight into a temp file.

The parts themselves are fetched by the part fetcher (``_parts``: planning,
streaming into the sink, resuming, stall detection); this module is what a
file download adds around it.

The algorithm
-------------
1. **Ask what the object is.** An S3 object of unknown size starts with one
   plain GET (checksums asked for, ``versionId`` when a version was asked
   for); its headers tell all a HEAD would. It must be unranged: S3 sends
   the full-object checksums only on a GET without ``Range``. An object that
   fits in one part is read to its end (step 4): one request. For a larger
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
   that only the missing parts are fetched (step 5); so does a restart
   after the object changed. HTTP sources, often presigned for GET only,
   keep their GET of byte 0 (a separate probe: not unified). The answer
   fixes the size, the ETag and the version every later request is pinned
   to (``If-Match`` and ``versionId``), so parts of two different versions
   can never be stitched together.
2. **Fetch the parts** into the temp file (``_parts``: parallel ranged GETs,
   each body written at its offset with ``os.pwrite`` on a worker thread,
   resumed from the first missing byte after a failure, a server that
   ignores ``Range`` read as one plain GET).
3. **Verify and publish.** Sizes are implied by the checked ranges; checksums
   are verified as ``_checksums`` describes; then the temp file is fsynced
   and renamed over the destination, on a worker thread
   (``TempFile.finish``). Any exception or cancellation before
   that removes the temp file and leaves the destination untouched. A
   checksum mismatch starts the download over once; so does a changed
   object when ``on_change="restart"``.
4. **Small objects take one GET.** When a listing or an inventory already
   told the size and ETag and the object fits in one part, or when nothing
   is known and the first GET's headers show it fits (step 1), there is no
   HEAD: one plain GET (pinned to the listed ETag, checksums asked for)
   brings the body and, in its headers, everything the check needs (which
   HTTP client reads it is the transport's choice: see
   ``THREADED_BODY_ABOVE``). If that GET fails for a reason worth
   retrying, or the object changed since it was listed, the download
   continues down the normal path above.
5. **Survive a crash.** Multi-part downloads keep a journal of the parts
   that are durably in the temp file (``sinks._journal``). Running the same
   download after a ``kill -9`` reopens that temp file and fetches only the
   missing parts; a changed object starts from zero.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._checksums import Check, choose_check
from .._config import TransferConfig
from .._errors import IntegrityError, ObjectChangedError, S3PullError, TimeoutError
from .._events import Events
from .._results import DownloadResult, ObjectInfo
from .._source import S3Source, Source
from ..planning import Part, RetryBudget, check_answer, choose_part_size, plan_parts
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
from ..transport import ListedObject, Transport
from ._bandwidth import Throttle
from ._budget import MemoryBudget
from ._parts import BudgetedGet, FirstGet, ObjectDownload, PartFetcher, StreamFailed
from ._retrying import Retrier, Sleep


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a download lands: the file, its directory (``file.parent``, made
    once: pathlib builds a new path each time), and the batch's destination
    directory it must stay inside (None: the caller named the file)."""

    file: Path
    parent: Path
    root: Path | None

    def directory(self) -> Directory:
        """The file's directory, open, made if missing; through no symbolic
        link below ``root``."""
        return Directory.open(self.parent, root=self.root)


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
        self.events = events
        self.clock = clock
        #: The client's one retry driver: HEADs, GETs and listing pages.
        self.retrier = Retrier(config.retry, retry_budget, events, sleep=sleep)
        #: The client's bandwidth limit, shared by every stream of every object.
        throttle = (
            Throttle(config.max_bandwidth, config.stream_cost) if config.max_bandwidth else None
        )
        #: Fetches the parts of file downloads and of ordered streams alike.
        self.parts = PartFetcher(config, transport, budget, self.retrier, events, throttle)
        self._cleaned: set[Path] = set()
        #: Per destination directory: the journals crashed runs left there.
        self._journals: dict[Path, frozenset[str]] = {}

    async def stat(self, source: Source) -> ObjectInfo:
        """HEAD (or probe) ``source``, retrying transient failures."""
        info, _ = await self._stat(source)
        return info

    async def _stat(self, source: Source, failed_before: int = 0) -> tuple[ObjectInfo, int]:
        return await self.retrier.run(
            lambda: self.transport.head(source), source.redacted, failed_before=failed_before
        )

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
        target = _Target(destination, destination.parent, root)
        if self.config.stale_age is not None and target.parent not in self._cleaned:
            await self._clean_stale(target.parent, root)  # once per directory: not every call
        total = self.config.timeouts.total
        try:
            if total is None:  # the default: no timer to set and cancel for every object
                result = await self._download_restarting(source, target, info, listed, started)
            else:
                async with asyncio.timeout(total):
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
        first: FirstGet | None = None
        #: A failed first GET's attempt, which the HEAD after it and the GETs
        #: of part 0 go on from: max_attempts bounds each request's tries.
        failed_get = 0
        # A listed object is told without awaiting _starts_with_get: the
        # coroutine would cost a batch's every object more than the test.
        if info is None and (
            self._fits_one_part(listed.size)
            if listed is not None
            else await self._starts_with_get(source, listed, target)
        ):
            try:
                return await self._download_whole(source, listed, target, started)
            except _Larger as larger:
                # Its headers stand in for the HEAD, its body for part 0.
                info, attempts, first = larger.first.info, 1, larger.first
            except _FastPathFailed as failed:
                attempts = failed.attempts  # on to the HEAD and ranged GETs
                restarted = failed.mismatched  # a checksum mismatch is retried once, not twice
                # A GET that failed (rather than one whose bytes did not
                # match) is the first of the HEAD's attempts: max_attempts
                # bounds their requests together.
                failed_get = 0 if failed.mismatched else failed.attempts
        while True:
            try:
                if info is None:
                    info, stat_attempts = await self._stat(source, failed_get)
                    # Attempts, not requests: a HEAD that succeeded at once and
                    # the GET after it are one attempt; only its retries count.
                    attempts += stat_attempts - 1 - failed_get
                try:
                    return await self._download(
                        source, info, target, started, attempts, first, failed_get
                    )
                finally:
                    if first is not None:
                        await first.close()  # unread if no part took it
                        first = None  # a restart asks a HEAD what the object is now
                    failed_get = 0  # a restart is of every byte, counted afresh
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
        first: FirstGet | None = None,
        failed_first: int = 0,
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
                state = ObjectDownload(source, info, check, file=file)
                state.attempts = attempts
                state.failed_first = failed_first
                if identity is not None:
                    known = resumable.parts if resumable is not None and file.resumed else {}
                    state.journal = Journal(directory, journal_name(file.name), identity, known)
                try:
                    await self.parts.fetch_all(state, state.start(parts), first=first)
                    verified = await self.parts.verify(state)
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
        directory = target.parent
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
        1 and 4 of the module docstring. ``listed``: what a listing said (size
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
        expect = listed.size if listed is not None else None
        get = BudgetedGet(
            self.budget,
            self.transport.whole_get_cost(expect),
            self.transport.get(source, if_match=etag, checksum_mode=True, expect=expect),
        )
        with target.directory() as directory:
            state: ObjectDownload | None = None
            # Made once the size is known; it outlives the GET.
            file: TempFile | None = None
            try:
                try:
                    async with get as response:
                        info = self.transport.info_from_response(source, response)
                        if listed is None and not self._fits_one_part(info.size):
                            self.retrier.succeeded()
                            raise _Larger(FirstGet(info, response, get.keep_open()))
                        if listed is not None and info.size != listed.size:
                            raise ObjectChangedError(
                                f"listed with {listed.size} bytes, now {info.size}",
                                source=redacted,
                            )
                        file = TempFile(destination, info.size, directory=directory).open()
                        check = choose_check(info) if self.config.verify else None
                        state = ObjectDownload(source, info, check, file=file)
                        state.attempts = 1
                        parts = plan_parts(info.size, max(info.size, 1))
                        state.start(parts)
                        self.events.queued(redacted, info.size)
                        check_answer(state, response, 0, info.size - 1, ranged=False)
                        crc = state.crcs[0] if state.crcs else None
                        await self.parts.deliver(state, response, 0, info.size - 1, crc)
                    self.retrier.succeeded()
                    for part in parts:
                        state.part_finished(part)
                    verified = await self.parts.verify(state)
                except (S3PullError, StreamFailed) as exc:
                    if state is not None:
                        await state.close(keep_journal=False)
                    error = exc.error if isinstance(exc, StreamFailed) else exc
                    if not isinstance(error, ObjectChangedError | IntegrityError):
                        # Raises what no retry can fix; otherwise backs off.
                        await self.retrier.failed(redacted, error, failures=1, attempts=1)
                    raise _FastPathFailed(
                        attempts=1, mismatched=isinstance(error, IntegrityError)
                    ) from error
                except BaseException:
                    if state is not None:
                        await state.close(keep_journal=False)
                    raise
                await state.close(keep_journal=False)
                await file.finish(mtime=_timestamp(info))
            finally:
                if file is not None:
                    file.close()  # removes it, unless it was committed
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


class _Larger(Exception):
    """The first, plain GET found an object larger than one part."""

    def __init__(self, first: FirstGet) -> None:
        super().__init__("larger than one part")
        self.first = first
