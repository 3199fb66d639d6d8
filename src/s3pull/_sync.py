"""The synchronous facade: the same coroutines, run on one background loop.

There is no sync copy of any algorithm. :class:`Client` forwards each call to
an :class:`AsyncClient` living on a process-wide event-loop thread and waits
for the answer. If the waiting thread is interrupted (Ctrl-C, a Celery soft
time limit), the coroutine is cancelled and its cleanup — removing the temp
file — finishes before the exception reaches the caller.

After ``fork`` (Celery's prefork pool) the child has no loop thread and the
parent's sockets must not be shared, so the child starts a fresh thread and
each client a fresh connection pool on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from ._client import AsyncClient, ManyItem, PathLike
from ._results import BatchResult, DownloadResult, ObjectInfo, ObjectOutcome
from ._source import Source
from .scheduling import ObjectReader, Pipelines, remove_temp

if TYPE_CHECKING:
    from .consumers import InventoryRecord

T = TypeVar("T")

#: How long an interrupted call may take to clean up before we stop waiting.
_CLEANUP_SECONDS = 30.0


async def _next_or_none(iterator: AsyncGenerator[T, None]) -> T | None:
    return await anext(iterator, None)


class _LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="s3pull-loop", daemon=True
        )
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coroutine
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(tracked(), self.loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (or failed): make sure the coroutine has stopped and
            # cleaned up before we return control.
            future.cancel()
            finished.wait(_CLEANUP_SECONDS)
            raise


_lock = threading.Lock()
_portal: _LoopThread | None = None


def _loop_thread() -> _LoopThread:
    global _portal
    with _lock:
        if _portal is None:
            _portal = _LoopThread()
        return _portal


def _forget_loop_after_fork() -> None:
    global _portal, _lock
    _portal = None  # the thread did not survive fork; its loop is unusable here
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_loop_after_fork)


class _Opened:
    """A :class:`Client`'s async client, in the process that made it (after
    ``fork`` the child makes its own). Kept apart from the ``Client`` so that
    a finalizer can close it once the ``Client`` is gone."""

    __slots__ = ("client", "pid")

    def __init__(self) -> None:
        self.client: AsyncClient | None = None
        self.pid = -1

    def close_forgotten(self) -> None:
        """Close the connections of a ``Client`` collected (or alive at exit)
        unclosed, on the loop thread, and wait for it unless this runs there."""
        client, self.client = self.client, None
        portal = _portal
        if client is None or self.pid != os.getpid() or portal is None:
            return
        closing = asyncio.run_coroutine_threadsafe(client.aclose(), portal.loop)
        if threading.current_thread() is not portal.thread:
            with contextlib.suppress(Exception):  # a dead loop: nothing is left to close
                closing.result(_CLEANUP_SECONDS)


class Client:
    """The synchronous client. Takes the same arguments as :class:`AsyncClient`.

    Safe to share between threads and to create before ``fork``.

    Example:
        >>> with Client() as client:  # doctest: +SKIP
        ...     result = client.download_file("s3://bucket/big.bin", "/data/")
        ...     print(result.bytes, result.seconds)
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._opened = _Opened()
        # A client dropped without close() (as boto3's may be) still closes
        # its connections: when it is collected, or at exit.
        weakref.finalize(self, self._opened.close_forgotten)
        self._client()  # validate the options now, not at the first call

    def _client(self) -> AsyncClient:
        opened = self._opened
        if opened.client is None or opened.pid != os.getpid():
            opened.client = AsyncClient(**self._options)
            opened.pid = os.getpid()
        return opened.client

    @property
    def config(self) -> Any:
        return self._client().config

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return _loop_thread().run(coroutine)

    def _pipelines(self) -> Pipelines:
        """The streams and temp downloads of this process's :class:`AsyncClient`."""
        return self._client().pipelines

    def stat(self, source: str | Source, *, version_id: str | None = None) -> ObjectInfo:
        """See :meth:`AsyncClient.stat`."""
        return self._run(self._client().stat(source, version_id=version_id))

    def download_file(
        self,
        source: str | Source,
        destination: PathLike,
        *,
        version_id: str | None = None,
        info: ObjectInfo | None = None,
    ) -> DownloadResult:
        """See :meth:`AsyncClient.download_file`."""
        return self._run(
            self._client().download_file(source, destination, version_id=version_id, info=info)
        )

    def download_prefix(self, source: str, destination: PathLike, **options: Any) -> BatchResult:
        """Download every object under an S3 prefix; see :meth:`AsyncClient.download_prefix`.

        Example:
            >>> batch = client.download_prefix("s3://b/logs/", "logs/")  # doctest: +SKIP
            >>> batch.ok  # doctest: +SKIP
            True
        """
        return self._run(self._client().download_prefix(source, destination, **options))

    def download_many(
        self, items: Iterable[ManyItem], destination: PathLike | None = None, **options: Any
    ) -> BatchResult:
        """Download many objects; see :meth:`AsyncClient.download_many`.

        ``items`` is consumed as the batch goes (a generator of millions of
        keys is fine), 1000 at a time in worker threads so that a slow
        generator never stalls the downloads. Objects tied to the thread that
        made them (a ``sqlite3`` connection) cannot be read there: fetch
        their rows in the caller's thread, or pass a list.
        """
        return self._run(self._client().download_many(items, destination, **options))

    def iter_download_prefix(
        self, source: str, destination: PathLike, **options: Any
    ) -> Iterator[ObjectOutcome]:
        """Each :class:`ObjectOutcome` of :meth:`download_prefix` as it finishes."""
        yield from self._iterate(
            self._client().iter_download_prefix(source, destination, **options)
        )

    def iter_download_many(
        self, items: Iterable[ManyItem], destination: PathLike | None = None, **options: Any
    ) -> Iterator[ObjectOutcome]:
        """Each :class:`ObjectOutcome` of :meth:`download_many` as it finishes."""
        yield from self._iterate(self._client().iter_download_many(items, destination, **options))

    def _iterate(self, items: AsyncGenerator[T, None]) -> Iterator[T]:
        """``items``, run on the loop thread, one at a time; closed when we stop."""
        try:
            while (item := self._run(_next_or_none(items))) is not None:
                yield item
        finally:
            self._run(items.aclose())

    @contextmanager
    def download_to_temp(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        dir: PathLike | None = None,
    ) -> Iterator[Path]:
        """See :meth:`AsyncClient.download_to_temp`."""
        path = self._run(self._pipelines().download_temp(source, version_id, dir))
        try:
            yield path
        finally:
            remove_temp(path)

    def open(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        window: int | str | None = None,
        part_size: int | str | None = None,
    ) -> ObjectReader:
        """Read an object in order while it downloads; see :meth:`AsyncClient.open`.

        Example:
            >>> import gzip
            >>> with client.open("s3://b/a.gz") as raw, gzip.open(raw, "rt") as t:  # doctest: +SKIP
            ...     for line in t:
            ...         handle(line)
        """
        stream = self._run(self._pipelines().open_stream(source, version_id, window, part_size))
        return ObjectReader(stream, self._run)

    def open_temp(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        dir: PathLike | None = None,
    ) -> BinaryIO:
        """See :meth:`AsyncClient.open_temp`."""
        return self._run(self._client().open_temp(source, version_id=version_id, dir=dir))

    def iter_lines(self, source: str | Source, **options: Any) -> Iterator[str]:
        """Lines of an object, parsed while it downloads; see :func:`s3pull.iter_lines`.

        Example:
            >>> for line in client.iter_lines("s3://b/app.log.gz"):  # doctest: +SKIP
            ...     handle(line)
        """
        from .consumers import line_format

        return self._pipelines().read_items(self._run, source, line_format, **options)

    def iter_csv(self, source: str | Source, **options: Any) -> Iterator[Any]:
        """CSV rows of an object, parsed while it downloads; see :func:`s3pull.iter_csv`."""
        from .consumers import csv_format

        return self._pipelines().read_items(self._run, source, csv_format, **options)

    def iter_parquet_batches(self, source: str | Source, **options: Any) -> Iterator[Any]:
        """Parquet record batches via a temp file; see :func:`s3pull.iter_parquet_batches`."""
        from .consumers import parquet_reader

        return self._pipelines().read_file(self._run, source, parquet_reader(**options))

    def iter_inventory(
        self, manifest: str, *, prefix: str | None = None, **options: Any
    ) -> Iterator[InventoryRecord]:
        """Every record of an S3 Inventory; see :class:`s3pull.Inventory`.

        The data files are read in parallel on the loop thread; records come
        over in batches, so the hop between threads costs little per record.

        Example:
            >>> total = sum(r.size or 0 for r in client.iter_inventory(url))  # doctest: +SKIP
        """
        from .scheduling import Inventory

        batches = Inventory(self._client(), manifest, **options).batches(prefix)
        for batch in self._iterate(batches):
            yield from batch

    def close(self) -> None:
        """Close the connection pool."""
        opened = self._opened
        if opened.client is not None and opened.pid == os.getpid():
            self._run(opened.client.aclose())
        opened.client = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
