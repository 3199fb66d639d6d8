"""Many objects: one scheduler for prefixes, manifests and lists of pairs.

The algorithm
-------------
1. **A producer** walks the items (a streamed listing, an inventory, the
   caller's iterable) and routes each one by its size, when a listing told
   it: objects above ``large_object_threshold`` go to the large lane, all
   others (and those of unknown size) to the small lane. Each lane is a
   bounded queue, so a million-key listing is never held in memory: the
   producer waits while the lanes are full, and downloading starts with the
   first page.
2. **Two pools of workers** take from the lanes: ``batch_concurrency`` for
   small objects, ``large_objects`` for large ones, each large object with
   its own ranged GETs. Every GET of both lanes draws on the client's one
   memory budget and connection pool. A few huge files therefore cannot
   occupy every worker, and many small files cannot starve a huge one.
3. **Each object** passes its circuit breakers (skipped as
   ``CircuitOpenError`` if its own is open; waits if its endpoint's is, and
   fails at once as ``EndpointUnavailableError`` if the endpoint is down),
   is skipped if ``skip_existing`` finds the same size and a modification
   time not older than the object's, and is otherwise downloaded by the
   single-object ``Downloader`` (a small listed object with one GET, no
   HEAD). Its failure is recorded, never raised: the batch goes on, unless
   ``fail_fast`` asks to stop at the first failure.
4. **Outcomes** are yielded as they finish, through a bounded queue.

A **dry run** (``dry_run``) goes through the same steps up to the
download: keys are mapped and refused alike, ``skip_existing`` decides
alike, and an object not known from a listing gets a HEAD (so a missing one
is reported as it would be); then the outcome is ``planned``, with the
object's size. Nothing is written and no breaker is consulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from .._config import TransferConfig
from .._errors import CircuitOpenError, ConfigError, ProtocolError, S3PullError, UnsafePathError
from .._results import (
    DIRECTORY,
    DOWNLOADED,
    EXISTING,
    FAILED,
    NONCURRENT,
    PLANNED,
    ObjectOutcome,
)
from .._source import HttpSource, S3Source, Source, parse_source
from ..planning import LocalTarget, PathClaims, ShardItem, destination_file, key_to_target
from ..sinks import Directory
from ..transport import ListCursor, ListedObject, Transport, quoted_etag
from ._breaker import Breakers
from ._download import Downloader
from ._parts import first_cause
from ._retrying import Retrier

#: An object's size and modification time, as a listing or a HEAD told them.
_Facts = tuple[int, datetime | None]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One object of a batch, or one key refused before it got a path.

    Attributes:
        source: what to download.
        destination: the file to write (the directory, for a marker).
        listed: size and ETag from a listing or inventory, if known.
        directory: a directory-marker key: create ``destination`` as a directory.
        refused: the reason a key was refused (an ``UnsafePathError``): not downloaded.
        noncurrent: an inventory record of a noncurrent version or a delete
            marker: nothing to download, and no path claimed.
        root: the batch's destination directory, for a key's item:
            ``destination`` is below it, reached through no symbolic link.
    """

    source: Source
    destination: Path | None
    listed: ListedObject | None = None
    directory: bool = False
    refused: S3PullError | None = None
    noncurrent: bool = False
    root: Path | None = None


class BatchItems:
    r"""Turns what a caller gives into :class:`BatchItem`\ s: the one place where
    keys become local paths, and where unsafe or clashing keys are refused.

    Args:
        root: the directory keyed items land in (None: only pairs are allowed).
        base: the part of every key that is not part of its path (see
            ``planning._paths.key_base``).
    """

    def __init__(self, root: Path | None, *, base: str = "") -> None:
        self.root = root
        self.base = base
        self.claims = PathClaims()

    def keyed(self, source: Source, listed: ListedObject | None = None) -> BatchItem | None:
        """The item for ``source`` under ``root`` at its key's path (an HTTP URL
        at its last segment); None for the marker of ``root`` itself."""
        if self.root is None:
            raise ConfigError(
                f"{source.redacted} has no destination: give a destination directory, "
                "or (source, destination) pairs"
            )
        key = source.key if isinstance(source, S3Source) else source.name
        shown = source.redacted  # for errors; made once, not once per check
        try:
            target = key_to_target(key, self.base, source=shown)
            if target is None:
                return None
            self.claims.claim(target, source=shown)
        except UnsafePathError as error:
            return BatchItem(source, None, refused=error)
        return BatchItem(
            source,
            self.root / target.relative,
            listed=listed,
            directory=target.is_directory,
            root=self.root,
        )

    def paired(self, source: Source, destination: str | os.PathLike[str]) -> BatchItem:
        """The item for an explicit ``(source, destination)`` pair; a destination
        ending in a separator or naming a directory gets the object's name."""
        path = Path(destination)
        is_dir = os.fspath(destination).endswith(os.sep) or path.is_dir()
        try:
            target = destination_file(source.name, path, is_dir=is_dir, source=source.redacted)
            absolute = os.path.abspath(target).lstrip(os.sep)
            self.claims.claim(LocalTarget(absolute, False), source=source.redacted)
        except UnsafePathError as error:
            return BatchItem(source, None, refused=error)
        return BatchItem(source, target)

    def from_item(self, item: Any) -> BatchItem | None:
        """A source, a ``(source, destination)`` pair, or a listing or
        inventory record (``bucket``, ``key``, ``size``, ``etag``...).

        A record of a noncurrent version or a delete marker (from an
        inventory of all versions) is passed over: what lands is each key's
        current object, as from an inventory of current versions. The GET
        names no version, as after a listing (reading a version by its id
        needs ``s3:GetObjectVersion`` as well), so an object overwritten since
        the report lands as it is now.

        A :class:`ShardItem` was planned already, by the process that cut the
        batch into shards (its path decided, its clashes found): it is taken
        as it is.
        """
        if isinstance(item, ShardItem):
            return planned_item(item)
        if isinstance(item, tuple):
            return self.paired(parse_source(item[0]), item[1])
        if isinstance(item, str | S3Source | HttpSource):
            return self.keyed(parse_source(item))
        if not getattr(item, "is_current", True):
            version = S3Source(item.bucket, item.key, getattr(item, "version_id", None))
            return BatchItem(version, None, noncurrent=True)
        return self.keyed(S3Source(item.bucket, item.key), _listed(item))


def shard_item(number: int, item: BatchItem) -> ShardItem:
    """``item`` as the JSON-ready item of a shard (a path-less item has no shard)."""
    assert item.destination is not None
    source, listed = item.source, item.listed
    where: dict[str, Any] = (
        {"bucket": source.bucket, "key": source.key, "version_id": source.version_id}
        if isinstance(source, S3Source)
        else {"url": source.url}
    )
    if listed is not None:
        modified = listed.last_modified
        where.update(
            size=listed.size,
            etag=listed.etag,
            last_modified=modified.isoformat() if modified is not None else None,
            storage_class=listed.storage_class,
        )
    return ShardItem(
        number,
        str(item.destination),
        root=str(item.root) if item.root is not None else None,
        directory=item.directory,
        **where,
    )


def planned_item(item: ShardItem) -> BatchItem:
    """The inverse of :func:`shard_item`."""
    source: Source
    if item.url is not None:
        source = HttpSource(item.url)
    else:
        assert item.bucket is not None and item.key is not None
        source = S3Source(item.bucket, item.key, item.version_id)
    listed = None
    if item.size is not None:
        modified = item.last_modified
        listed = ListedObject(
            item.key or "",
            item.size,
            item.etag,
            datetime.fromisoformat(modified) if modified is not None else None,
            item.storage_class,
        )
    root = Path(item.root) if item.root is not None else None
    return BatchItem(source, Path(item.path), listed=listed, directory=item.directory, root=root)


def _listed(record: Any) -> ListedObject | None:
    """What a record (an ``InventoryRecord``...) says about its object, as a listing would."""
    if record.size is None:
        return None  # a delete marker, or no size column: ask the store
    return ListedObject(record.key, record.size, quoted_etag(record.etag), record.last_modified)


class _Stop(Exception):
    """``fail_fast``: the first failure ends the batch."""


async def list_objects(
    transport: Transport, retrier: Retrier, bucket: str, prefix: str
) -> AsyncIterator[ListedObject]:
    """Every object under ``prefix``, page by page, retrying failed pages
    with the client's retry driver.

    S3 lists keys in ascending order; a page that goes back (a repeated or
    stale continuation token) would list keys again forever, so it is a
    ``ProtocolError`` instead.
    """
    where = f"s3://{bucket}/{prefix}"
    token: ListCursor | None = None
    last_key: str | None = None
    while True:
        page, _ = await retrier.run(partial(transport.list_page, bucket, prefix, token), where)
        for listed in page.objects:
            if last_key is not None and listed.key <= last_key:
                raise ProtocolError(
                    f"the listing went back from {last_key!r} to {listed.key!r} "
                    "(a repeated continuation token?)",
                    source=where,
                )
            last_key = listed.key
            yield listed
        if page.next_token is None:
            return
        if page.next_token == token:
            raise ProtocolError("the listing repeated its continuation token", source=where)
        token = page.next_token


def endpoint_of(source: Source) -> str:
    """What an endpoint breaker guards: an S3 bucket, or an HTTP origin.

    Example:
        >>> from s3pull import parse_source
        >>> endpoint_of(parse_source("s3://logs/2024/a.gz"))
        's3://logs'
    """
    if isinstance(source, HttpSource):
        scheme, _, rest = source.redacted.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"
    return f"s3://{source.bucket}"


def is_up_to_date(path: Path, size: int, last_modified: float | None) -> bool:
    """True when ``path`` is a file of ``size`` bytes, modified no earlier than
    ``last_modified`` (whole seconds: file systems and listings round)."""
    try:
        status = os.stat(path)
    except OSError:
        return False
    if status.st_size != size or not stat.S_ISREG(status.st_mode):
        return False
    return last_modified is None or int(status.st_mtime) >= int(last_modified)


class Batch:
    """Runs one batch for a client; see the module docstring.

    Args:
        config: lanes and thresholds.
        downloader: the client's single-object downloader.
        breakers: the client's circuit breakers.
        skip_existing: do not download objects already there (same size,
            modified no earlier than the object).
        fail_fast: stop at the first failure; downloads in flight are
            cancelled and leave nothing behind.
        dry_run: download nothing; see the module docstring.
    """

    def __init__(
        self,
        config: TransferConfig,
        downloader: Downloader,
        breakers: Breakers,
        *,
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.config = config
        self.downloader = downloader
        self.breakers = breakers
        self.skip_existing = skip_existing
        self.fail_fast = fail_fast
        self.dry_run = dry_run

    async def run(self, items: AsyncIterable[BatchItem]) -> AsyncGenerator[ObjectOutcome, None]:
        """Download ``items``; yield each outcome as it finishes."""
        config = self.config
        small: asyncio.Queue[BatchItem | None] = asyncio.Queue(2 * config.batch_concurrency)
        large: asyncio.Queue[BatchItem | None] = asyncio.Queue(2 * config.large_objects)
        outcomes: asyncio.Queue[ObjectOutcome | BaseException | None] = asyncio.Queue(
            2 * config.batch_concurrency
        )
        lanes = ((small, config.batch_concurrency), (large, config.large_objects))

        async def produce() -> None:
            async for item in items:
                if (unplanned := unplanned_outcome(item)) is not None:
                    await self._emit(outcomes, unplanned)
                    continue
                size = item.listed.size if item.listed is not None else None
                big = size is not None and size > config.large_object_threshold
                await (large if big else small).put(item)

        async def work(lane: asyncio.Queue[BatchItem | None]) -> None:
            while (item := await lane.get()) is not None:
                await self._emit(outcomes, await self._one(item))

        async def run_all() -> None:
            listing_error: S3PullError | None = None
            try:
                async with asyncio.TaskGroup() as group:
                    for lane, count in lanes:
                        for _ in range(count):
                            group.create_task(work(lane))
                    try:
                        await produce()
                    except S3PullError as error:
                        # The listing (or manifest) broke: what was already
                        # queued still finishes, then the batch says why it ended.
                        listing_error = error
                    for lane, count in lanes:
                        for _ in range(count):
                            await lane.put(None)
            except BaseExceptionGroup as failures:
                _, rest = failures.split(_Stop)
                if rest is not None:
                    await outcomes.put(first_cause(rest))
                    return
            await outcomes.put(listing_error)

        runner = asyncio.create_task(run_all())
        try:
            while (outcome := await outcomes.get()) is not None:
                if isinstance(outcome, BaseException):
                    raise outcome
                yield outcome
        finally:
            if not runner.done():
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _emit(
        self, outcomes: asyncio.Queue[ObjectOutcome | BaseException | None], outcome: ObjectOutcome
    ) -> None:
        await outcomes.put(outcome)
        if self.fail_fast and outcome.status == FAILED:
            raise _Stop

    async def _one(self, item: BatchItem) -> ObjectOutcome:
        """Download one item; every failure becomes an outcome."""
        assert item.destination is not None
        if self.dry_run:
            return await self._plan(item)
        if item.directory:
            try:
                opened = await asyncio.to_thread(Directory.open, item.destination, root=item.root)
            except S3PullError as error:
                return _failed(item, error)
            opened.close()
            return ObjectOutcome(item.source.redacted, item.destination, DIRECTORY)
        key = item.source.redacted
        if not self.breakers.admit(key):
            state = self.breakers.state(key)
            return _failed(
                item,
                CircuitOpenError(
                    f"not attempted: {state.failures} failures in a row, the last: "
                    f"{state.last_failure}",
                    source=key,
                ),
            )
        try:
            async with self.breakers.endpoint(endpoint_of(item.source)):
                if self.skip_existing and await self._existing(item):
                    self.breakers.succeeded(key)
                    return ObjectOutcome(key, item.destination, EXISTING)
                result = await self.downloader.download(
                    item.source, item.destination, listed=item.listed, root=item.root
                )
        except S3PullError as error:
            self.breakers.failed(key, error)
            return _failed(item, error)
        except BaseException:
            self.breakers.abandoned(key)  # cancelled: no verdict on the object
            raise
        self.breakers.succeeded(key)
        return ObjectOutcome(key, result.path, DOWNLOADED, result=result)

    async def _existing(self, item: BatchItem, facts: _Facts | None = None) -> bool:
        assert item.destination is not None
        size, modified = facts or await self._facts(item)
        stamp = modified.timestamp() if modified is not None else None
        return await asyncio.to_thread(is_up_to_date, item.destination, size, stamp)

    async def _facts(self, item: BatchItem) -> _Facts:
        """Size and modification time: the listing's, else a HEAD's."""
        listed = item.listed
        if listed is not None:
            return listed.size, listed.last_modified
        info = await self.downloader.stat(item.source)
        return info.size, info.last_modified

    async def _plan(self, item: BatchItem) -> ObjectOutcome:
        """What a real run would do with ``item``, writing nothing."""
        key = item.source.redacted
        if item.directory:
            return ObjectOutcome(key, item.destination, PLANNED, size=0)
        try:
            facts = await self._facts(item)
        except S3PullError as error:
            return _failed(item, error)
        if self.skip_existing and await self._existing(item, facts):
            return ObjectOutcome(key, item.destination, EXISTING, size=facts[0])
        return ObjectOutcome(key, item.destination, PLANNED, size=facts[0])


def unplanned_outcome(item: BatchItem) -> ObjectOutcome | None:
    """The outcome of an item with nothing to download (a refused key, a
    noncurrent version), known without a request; None for the others."""
    if item.refused is not None:
        return _failed(item, item.refused)
    if item.noncurrent:
        return ObjectOutcome(item.source.redacted, None, NONCURRENT)
    return None


def _failed(item: BatchItem, error: S3PullError) -> ObjectOutcome:
    if error.source is None:
        error.source = item.source.redacted
    return ObjectOutcome(item.source.redacted, item.destination, FAILED, error=error)
