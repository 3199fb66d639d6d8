"""The asynchronous client: the one implementation behind the API and the CLI."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, Union

from ._config import TransferConfig
from ._errors import S3PullError
from ._events import Events, LoggingSubscriber, Subscriber
from ._results import BatchResult, DownloadResult, ObjectInfo, ObjectOutcome, counted
from ._source import Source, parse_source
from .planning import RetryBudget, destination_file, holdable, local_destination
from .scheduling import (
    Batch,
    BatchItem,
    BatchItems,
    Breakers,
    Downloader,
    MemoryBudget,
    ObjectStream,
    Pipelines,
    copy_stream,
    prefix_items,
    remove_temp,
)
from .sinks import local_error, resolve_destination
from .transport import S3Endpoint, Transport

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .consumers import InventoryRecord
    from .executors import PoolSetup
    from .metrics import Metrics
    from .planning import ShardItem
    from .scheduling import Inventory

PathLike = str | os.PathLike[str]
#: What ``download_many`` takes: a source (it lands under ``destination`` at
#: its key's path), a ``(source, destination file)`` pair, or a record of a
#: listing or inventory (``InventoryRecord``: ``bucket``, ``key``, ``size``...),
#: or the planned item of a shard (``ShardItem``, as an executor's worker runs it).
ManyItem = Union[str, Source, tuple[str | Source, PathLike], "InventoryRecord", "ShardItem"]

#: Runs a batch's planned items elsewhere (``AsyncClient(executor=...)``):
#: given the items and the batch's setup, it yields their outcomes.
Executor = Callable[[AsyncIterable[BatchItem], "PoolSetup"], AsyncGenerator[ObjectOutcome, None]]

T = TypeVar("T")


class AsyncClient:
    """Downloads objects from S3, S3-compatible stores and HTTP(S) URLs.

    Everything a client does shares one memory budget, one retry budget and
    one connection pool. Use it as an async context manager, or call
    :meth:`aclose`.

    Args:
        config: part size, concurrency, memory budget, timeouts, retries.
        endpoint_url: a custom S3 API endpoint (MinIO, Ceph, R2, a local
            server); default ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS.
        region: the AWS region; default from the profile or environment.
        profile: the AWS profile; default ``AWS_PROFILE``.
        addressing_style: ``auto``, ``path`` or ``virtual``.
        sign: False sends anonymous requests (public buckets).
        subscribers: progress listeners; default: a logger at INFO.
        executor: where batches run instead of this process and its local
            pool, e.g. ``s3pull.celery.CeleryExecutor(app)``: it gets the
            planned items and the batch's setup, and yields the outcomes.
        metrics: record Prometheus metrics (``s3pull.metrics``): True in
            ``prometheus_client``'s default registry, or a
            ``CollectorRegistry``; default: ``config.metrics``.

    Example:
        >>> async with AsyncClient() as client:  # doctest: +SKIP
        ...     result = await client.download_file("s3://bucket/big.bin", "/data/")
    """

    def __init__(
        self,
        *,
        config: TransferConfig | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        addressing_style: str = "auto",
        sign: bool = True,
        subscribers: Iterable[Subscriber] | None = None,
        executor: Executor | None = None,
        metrics: bool | CollectorRegistry | Metrics | None = None,
    ) -> None:
        self.config = config or TransferConfig()
        self.executor = executor
        #: What a worker process builds its own endpoint from.
        self._endpoint_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region": region,
            "addressing_style": addressing_style,
            "profile": profile,
            "sign": sign,
        }
        self.endpoint = S3Endpoint(**self._endpoint_args)
        self.budget = MemoryBudget(
            self.config.memory_limit,
            holdable=holdable(self.config.memory_limit, self.config.stream_cost),
        )
        self.retry_budget = RetryBudget(self.config.retry.retry_budget)
        listeners: list[Subscriber] = (
            [LoggingSubscriber()] if subscribers is None else list(subscribers)
        )
        self.breakers = Breakers(self.config.breakers)
        if metrics is None:
            metrics = self.config.metrics
        if metrics is not False:
            # Imported only when asked for: prometheus_client is an extra.
            from .metrics import Metrics

            if isinstance(metrics, Metrics):
                recorder = metrics
            else:
                recorder = Metrics.for_registry(None if metrics is True else metrics)
            recorder.watch(self.budget, self.breakers)
            listeners.append(recorder)
        self.events = Events(listeners)
        self._transport = Transport(self.config, self.endpoint, self.events)
        self._downloader = Downloader(
            self.config, self._transport, self.budget, self.retry_budget, self.events
        )
        #: Ordered streams and temp-file downloads, and the consumers wired to them.
        self.pipelines = Pipelines(self._downloader, self.budget)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.close()

    async def stat(self, source: str | Source, *, version_id: str | None = None) -> ObjectInfo:
        """Size, ETag, version, last-modified, checksums and content type, without
        downloading the object.

        Example:
            >>> info = await client.stat("s3://bucket/report.pdf")  # doctest: +SKIP
            >>> info.size  # doctest: +SKIP
            612368384
        """
        return await self._downloader.stat(parse_source(source, version_id=version_id))

    async def download_file(
        self,
        source: str | Source,
        destination: PathLike,
        *,
        version_id: str | None = None,
        info: ObjectInfo | None = None,
    ) -> DownloadResult:
        """Download one object to a file, atomically.

        A symbolic link is followed: its target is replaced atomically. A
        character or block device or a FIFO (``/dev/null``, ``/dev/stdout``,
        a named pipe) is not replaced but written in order, as :meth:`open`
        reads, with the same checks; a checksum mismatch is then raised after
        the bytes were written, since they cannot be taken back.

        Args:
            source: ``s3://bucket/key`` or an ``http(s)://`` URL.
            destination: a file path, or a directory (existing, or written
                with a trailing ``/``) to put the object in under its own name.
                Not a URL, not empty.
            version_id: download this S3 version.
            info: a previous :meth:`stat` of the object, to save the HEAD.

        Returns:
            A :class:`DownloadResult`.

        Raises:
            ConfigError: the destination is empty or a URL.
            S3PullError: the download failed; nothing was left at the destination.

        Example:
            >>> await client.download_file("s3://bucket/a.bin", "/tmp/a.bin")  # doctest: +SKIP
        """
        parsed = parse_source(source, version_id=version_id)
        text = os.fspath(destination)
        path = local_destination(text)
        # A few stats of local directory entries: not worth a thread hop.
        is_dir = text.endswith(os.sep) or path.is_dir()
        target = destination_file(parsed.name, path, is_dir=is_dir, source=parsed.redacted)
        target, in_place = resolve_destination(target)
        if in_place:
            return await self._download_in_place(parsed, target, info)
        return await self._downloader.download(parsed, target, info=info)

    async def _download_in_place(
        self, source: Source, path: Path, info: ObjectInfo | None
    ) -> DownloadResult:
        """Write ``source`` into the device or FIFO ``path``, in order.

        The bytes come from the ordered stream, so the checks are those of
        every download (one pinned version, Content-Range, sizes, checksums)
        and no second download algorithm exists.
        """
        started = time.monotonic()
        try:
            fd = await _open_for_writing(path)
            try:
                stream = await self.pipelines.open_stream(source, info=info)
                try:
                    await copy_stream(stream, lambda data: _write_all(fd, data, path))
                finally:
                    await stream.aclose()
            finally:
                os.close(fd)
        except S3PullError as error:
            self.events.error(source.redacted, error)
            raise
        result = DownloadResult(
            source=source.redacted,
            path=path,
            bytes=stream.size,
            seconds=time.monotonic() - started,
            attempts=stream.attempts,
            etag=stream.info.etag,
            version_id=stream.info.version_id,
            verified=stream.verified,
        )
        self.events.done(result)
        return result

    async def download_prefix(
        self,
        source: str,
        destination: PathLike,
        *,
        filters: Sequence[tuple[str, str]] = (),
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> BatchResult:
        """Download every object under an S3 prefix into a directory.

        The listing is streamed: downloads start with its first page and
        memory does not grow with the number of keys. A key lands at its path
        relative to the prefix's last ``/`` (``s3://b/logs/2024`` puts
        ``logs/2024-01.gz`` at ``DEST/2024-01.gz``). Keys that would escape
        the directory (``../x``, ``/abs``, control characters...) or clash
        with another key's path are refused and reported, never written.
        One failing object never stops the others; see :class:`BatchResult`.

        Args:
            source: ``s3://bucket/prefix`` (``s3://bucket`` for the whole bucket).
            destination: the directory to fill (created if needed).
            filters: ``("include" | "exclude", glob)`` rules, the last match
                wins; see :class:`s3pull.planning._filters.KeyFilter`.
            skip_existing: keep files already there with the same size and a
                modification time no older than the object's.
            fail_fast: stop at the first failure.
            dry_run: download nothing, write nothing: report what would be
                downloaded (``planned``, with each object's size), what
                would be kept (``existing``) and what would fail (refused
                keys; with no listing to tell, a HEAD finds missing objects).

        Example:
            >>> batch = await client.download_prefix("s3://b/logs/", "logs/")  # doctest: +SKIP
            >>> print(batch.summary())  # doctest: +SKIP
            2000 downloaded; 125.0 MiB in 3.10 s (40.3 MiB/s)
        """
        outcomes = self.iter_download_prefix(
            source,
            destination,
            filters=filters,
            skip_existing=skip_existing,
            fail_fast=fail_fast,
            dry_run=dry_run,
        )
        return await _collect(outcomes, fail_fast=fail_fast)

    async def iter_download_prefix(
        self,
        source: str,
        destination: PathLike,
        *,
        filters: Sequence[tuple[str, str]] = (),
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> AsyncGenerator[ObjectOutcome, None]:
        """Like :meth:`download_prefix`, yielding each :class:`ObjectOutcome` as it finishes."""
        items = prefix_items(self._transport, self._downloader, source, destination, filters)
        async for outcome in self._run_batch(items, skip_existing, fail_fast, dry_run):
            yield outcome

    async def download_many(
        self,
        items: Iterable[ManyItem] | AsyncIterable[ManyItem],
        destination: PathLike | None = None,
        *,
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> BatchResult:
        """Download many objects, concurrently, each atomically.

        Args:
            items: sources (``s3://`` or ``http(s)://``), which land under
                ``destination`` at their key's path (an HTTP URL under its
                last path segment); ``(source, destination)`` pairs (a
                destination ending in ``/`` or an existing directory gets
                the object's own name); or records of an inventory
                (:class:`InventoryRecord`), whose size and ETag stand for a
                listing's: a small object then takes one GET and no HEAD. A
                sync or async iterable, consumed as the batch goes: it may be
                a generator of millions.
            destination: the directory for items given without one.
            skip_existing: see :meth:`download_prefix`.
            fail_fast: stop at the first failure.
            dry_run: see :meth:`download_prefix`.

        Example:
            >>> keys = ["s3://b/a/1.pdf", "s3://b/a/2.pdf"]
            >>> batch = await client.download_many(keys, "/data/")  # doctest: +SKIP
            >>> batch.ok, [f.error for f in batch.failures]  # doctest: +SKIP
            (True, [])
        """
        outcomes = self.iter_download_many(
            items, destination, skip_existing=skip_existing, fail_fast=fail_fast, dry_run=dry_run
        )
        return await _collect(outcomes, fail_fast=fail_fast)

    async def iter_download_many(
        self,
        items: Iterable[ManyItem] | AsyncIterable[ManyItem],
        destination: PathLike | None = None,
        *,
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> AsyncGenerator[ObjectOutcome, None]:
        """Like :meth:`download_many`, yielding each :class:`ObjectOutcome` as it finishes."""
        root = local_destination(os.fspath(destination)) if destination is not None else None
        maker = BatchItems(root)

        async def batch_items() -> AsyncIterator[BatchItem]:
            async for item in _aiter(items):
                built = maker.from_item(item)
                if built is not None:
                    yield built

        async for outcome in self._run_batch(batch_items(), skip_existing, fail_fast, dry_run):
            yield outcome

    async def _run_batch(
        self,
        items: AsyncIterable[BatchItem],
        skip_existing: bool,
        fail_fast: bool,
        dry_run: bool,
    ) -> AsyncGenerator[ObjectOutcome, None]:
        batch = Batch(
            self.config,
            self._downloader,
            self.breakers,
            skip_existing=skip_existing,
            fail_fast=fail_fast,
            dry_run=dry_run,
        )
        listed = self._listed(items)
        if self.config.processes == 1 and self.executor is None:
            outcomes = batch.run(listed)
        else:
            # Spread over worker processes when it pays (see s3pull.executors),
            # or over the executor the client was given.
            from .executors import InProcess, PoolSetup, ShardOptions, spread

            setup = PoolSetup(
                config=self.config,
                endpoint=self._endpoint_args,
                events=self.events,
                options=ShardOptions(
                    skip_existing=skip_existing, fail_fast=fail_fast, dry_run=dry_run
                ),
            )
            if self.executor is not None:
                outcomes = self.executor(listed, setup)
            else:
                outcomes = spread(listed, setup, InProcess(batch.run, self.budget, self.breakers))
        try:
            async for outcome in outcomes:
                yield outcome
        finally:
            await outcomes.aclose()

    async def _listed(self, items: AsyncIterable[BatchItem]) -> AsyncIterator[BatchItem]:
        """``items``, and the ``listed`` event once they end, with their count
        and total size (progress can then show a batch's totals)."""
        objects, size, sized = 0, 0, True
        async for item in items:
            objects += 1
            if item.listed is not None:
                size += item.listed.size
            elif item.refused is None and not item.directory and not item.noncurrent:
                sized = False
            yield item
        self.events.listed(objects, size if sized else None)

    @asynccontextmanager
    async def open(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        window: int | str | None = None,
        part_size: int | str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        """Read an object in order while it downloads, without a file.

        Parts are fetched in parallel ahead of the reader, within ``window``
        bytes taken from the client's memory budget (default: 32 MiB, or half
        the budget if that is less). Retries and resume-from-byte happen
        underneath, invisibly to the reader. CRC checksums are checked part by
        part and MD5/SHA over the bytes read: a mismatch is raised by the read
        that reaches the end.

        Args:
            source: ``s3://bucket/key`` or an ``http(s)://`` URL.
            version_id: read this S3 version.
            window: bytes of the budget for parts held ahead of the reader.
            part_size: bytes per ranged GET; default ``window / 8`` within 1-8 MiB.

        Example:
            >>> async with client.open("s3://bucket/big.csv") as stream:  # doctest: +SKIP
            ...     async for chunk in stream:
            ...         consume(chunk)
        """
        stream = await self.pipelines.open_stream(source, version_id, window, part_size)
        try:
            yield stream
        finally:
            await stream.aclose()

    def iter_lines(self, source: str | Source, **options: Any) -> AsyncIterator[str]:
        """Lines of an object, parsed while it downloads; see :func:`s3pull.iter_lines`.

        Example:
            >>> async for line in client.iter_lines("s3://b/app.log.gz"):  # doctest: +SKIP
            ...     handle(line)
        """
        from .consumers import line_format

        return self.pipelines.stream_items(source, line_format, **options)

    def iter_csv(self, source: str | Source, **options: Any) -> AsyncIterator[Any]:
        """CSV rows of an object, parsed while it downloads; see :func:`s3pull.iter_csv`."""
        from .consumers import csv_format

        return self.pipelines.stream_items(source, csv_format, **options)

    def iter_parquet_batches(self, source: str | Source, **options: Any) -> AsyncIterator[Any]:
        """Parquet record batches via a temp file; see :func:`s3pull.iter_parquet_batches`."""
        from .consumers import parquet_reader

        return self.pipelines.file_items(source, parquet_reader(**options))

    def inventory(self, manifest: str, **options: Any) -> Inventory:
        """An S3 Inventory reader; see :class:`s3pull.Inventory`.

        Example:
            >>> url = "s3://inv/src/cfg/2024-01-01T01-00Z/manifest.json"
            >>> inventory = client.inventory(url)  # doctest: +SKIP
            >>> async for record in inventory.records():  # doctest: +SKIP
            ...     print(record.key, record.size)
        """
        from .scheduling import Inventory

        return Inventory(self, manifest, **options)

    @asynccontextmanager
    async def download_to_temp(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        dir: PathLike | None = None,
    ) -> AsyncIterator[Path]:
        """Download to a private temp directory; yield the file's path; remove it
        on exit, whatever happens (exceptions, cancellation).

        The file keeps the object's name, so tools that look at the extension
        still work.

        Example:
            >>> async with client.download_to_temp("s3://b/doc.pdf") as path:  # doctest: +SKIP
            ...     text = extract(path)
        """
        path = await self.pipelines.download_temp(source, version_id, dir)
        try:
            yield path
        finally:
            remove_temp(path)

    async def open_temp(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        dir: PathLike | None = None,
    ) -> BinaryIO:
        """Download to a temp file and return it open for reading (binary).

        The file has no name any more by the time you get it: it disappears
        when the file object is closed, or when the process dies.

        Example:
            >>> with await client.open_temp("s3://b/data.parquet") as f:  # doctest: +SKIP
            ...     header = f.read(4)
        """
        path = await self.pipelines.download_temp(source, version_id, dir)
        try:
            return open(path, "rb")  # noqa: ASYNC230 - a local open, owned by the caller
        finally:
            remove_temp(path)


async def _collect(outcomes: AsyncIterator[ObjectOutcome], *, fail_fast: bool) -> BatchResult:
    """Run a batch to its end and count its outcomes."""
    result = BatchResult()
    async for _ in counted(outcomes, result, fail_fast=fail_fast):
        pass
    return result


#: Items of a sync iterable read per thread hop.
_CHUNK = 1000


async def _open_for_writing(path: Path) -> int:
    """Open an existing device or FIFO for writing, in a thread: opening a FIFO
    waits until a reader opens it. If the caller is cancelled meanwhile, the
    descriptor the thread gets later is closed, not leaked."""
    loop = asyncio.get_running_loop()
    opening = loop.run_in_executor(None, os.open, path, os.O_WRONLY | os.O_CLOEXEC)

    def close_late(future: asyncio.Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            os.close(future.result())

    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(close_late)
        raise
    except OSError as exc:
        raise local_error(exc, "open", path) from exc


def _write_all(fd: int, data: memoryview, path: Path) -> None:
    """``os.write`` until all of ``data`` is written (a pipe may take less)."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        raise local_error(exc, "write", path) from exc


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """Iterate sync or async items. A sync iterable (a generator, a file) is
    read in worker threads, a chunk at a time, so that it never blocks the
    event loop."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
        return
    iterator = iter(items)
    while chunk := await asyncio.to_thread(lambda: list(itertools.islice(iterator, _CHUNK))):
        for item in chunk:
            yield item
