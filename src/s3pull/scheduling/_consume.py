"""The wiring between downloads and parsers, written once for every consumer.

A consumer (``s3pull.consumers``) is a pure parser over what it is handed: a
binary file object (and the object's :class:`ObjectInfo`), or a local path.
It never opens a stream, downloads a file or starts a thread. That is done
here, in two ways, for both clients:

- **Ordered stream** (lines, CSV, CSV.gz inventory files): open an
  :class:`ObjectStream` within the memory budget and hand it to the parser
  as a file object. The async client parses on a worker thread while the
  loop downloads (:meth:`Pipelines.stream_items`, :meth:`Pipelines.parse_stream`);
  the sync facade parses in the caller's thread, each refill of the reader
  one hop to the loop (:meth:`Pipelines.read_items`).
- **Temp file** (Parquet, Parquet inventory files): formats that
  need random access. Download the object (in parallel, verified,
  atomically, within the budget) into a private temp directory, parse the
  file, and remove it when the iteration ends, however it ends: exhausted,
  closed early, an error, a cancellation (:meth:`Pipelines.file_items`,
  :meth:`Pipelines.read_file`).

Adding a format
---------------
A random-access format is one pure function plus one line of wiring per
client. Parquet is the example: ``consumers/_parquet.py`` has
``parquet_reader(columns=..., batch_size=...)``, which checks its options
(and that pyarrow is there) before anything is downloaded and returns the
parser of a local path; the clients wire it::

    # AsyncClient
    def iter_parquet_batches(self, source, **options):
        return self.pipelines.file_items(source, parquet_reader(**options))

    # Client (the sync facade: the same download, on its loop thread)
    def iter_parquet_batches(self, source, **options):
        return self._pipelines().read_file(self._run, source, parquet_reader(**options))

PDF is not wired here: PDFium is not thread-safe, so ``s3pull.documents``
downloads with ``AsyncClient.download_to_temp`` and parses in a process of
its own. A streamed format is a ``make(source, **options)``
returning an object with ``parse(raw, info)`` and ``batches(raw, info)``
(see :class:`StreamParser`), wired with :meth:`Pipelines.stream_items` and
:meth:`Pipelines.read_items`.

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
                                              (``consumers._batching``)

A temp-file consumer costs the download's GETs (charged to the budget) plus
what its parser holds (one Parquet row group's selected columns, decoded:
pyarrow's, not charged).
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from .._config import MiB
from .._errors import ConfigError
from .._results import ObjectInfo
from .._source import Source, parse_source
from .._units import parse_size
from ..planning import fit_window, safe_name, stream_part_size
from ._budget import MemoryBudget
from ._channel import Channel
from ._download import Downloader
from ._stream import ObjectStream

T = TypeVar("T")

#: The default ordered-stream window (or half the memory budget, if less).
DEFAULT_STREAM_WINDOW = 32 * MiB
#: Bytes of the client's budget an async parsing pipeline holds besides its window.
PIPELINE_COST = 2 * MiB
#: Bytes the parsing thread asks the stream for per hop to the loop.
THREAD_READER_BUFFER = 256 * 1024
#: Bytes an :class:`ObjectReader` asks the stream for at a time.
READER_BUFFER = 1 << 20
#: Bytes of an ordered stream handed to a writer per thread hop.
COPY_BUFFER = 1 << 20

#: Runs a coroutine on the event loop from another thread and waits for it.
Run = Callable[[Coroutine[Any, Any, Any]], Any]


class StreamParser(Protocol[T]):
    """A consumer of an ordered stream (``consumers.LineFormat``...)."""

    def parse(self, raw: BinaryIO, info: ObjectInfo) -> Iterable[T]:
        """The items, parsed in the caller's thread (the sync client)."""
        ...

    def batches(self, raw: BinaryIO, info: ObjectInfo) -> Iterable[list[T]]:
        """The items in batches, to cross from the parsing thread to the loop."""
        ...


class _RawStream(io.RawIOBase):
    """A read-only, non-seekable raw stream over an :class:`ObjectStream`."""

    def __init__(self, stream: ObjectStream, run: Run, *, closes_stream: bool = True):
        super().__init__()
        self._stream = stream
        self._run = run
        self._closes_stream = closes_stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed stream")
        result: int = self._run(self._stream.readinto(buffer))
        return result

    def close(self) -> None:
        if not self.closed:
            try:
                if self._closes_stream:
                    self._run(self._stream.aclose())
            finally:
                super().close()


class ObjectReader(io.BufferedReader):
    """A buffered, read-only file object over an object being downloaded.

    Usable wherever a binary file is: ``gzip.open(reader)``, ``io.TextIOWrapper``,
    ``csv``, ``pyarrow``'s stream readers. Not seekable.

    Attributes:
        info: what the object is (size, ETag, version...).
    """

    def __init__(
        self,
        stream: ObjectStream,
        run: Run,
        *,
        buffer_size: int | None = None,
        closes_stream: bool = True,
    ):
        # A large buffer: each refill is one hop to the loop thread. A reader
        # that does not own its stream (a parsing thread's, whose stream the
        # event loop closes) must never hop to the loop from close(): the
        # garbage collector may run it on the loop thread itself.
        raw = _RawStream(stream, run, closes_stream=closes_stream)
        super().__init__(raw, buffer_size=buffer_size or READER_BUFFER)
        self.info: ObjectInfo = stream.info


class Pipelines:
    """A client's ordered streams and temp-file downloads, and the consumers
    wired to them; every one draws from the client's memory budget."""

    def __init__(self, downloader: Downloader, budget: MemoryBudget) -> None:
        self.downloader = downloader
        self.budget = budget

    # -- ordered streams -----------------------------------------------------

    async def open_stream(
        self,
        source: str | Source,
        version_id: str | None = None,
        window: int | str | None = None,
        part_size: int | str | None = None,
        *,
        info: ObjectInfo | None = None,
        extra: int = 0,
    ) -> ObjectStream:
        """Open an ordered stream once its window is held; ``extra``: bytes
        held with it, for as long as it is open (a parsing pipeline's)."""
        parsed = parse_source(source, version_id=version_id)
        wanted, part_bytes = self._stream_window(window, part_size, extra)
        if info is None:
            info = await self.downloader.stat(parsed)

        def fit(free: int) -> tuple[int, int] | None:
            return fit_window(free, wanted=wanted, part_size=part_bytes, extra=extra)

        held = await self.budget.hold(
            lambda free: None if (plan := fit(free)) is None else plan[0] + extra
        )
        # The plan is a pure function of the bytes held: the same one again.
        planned = fit(held)
        assert planned is not None and planned[0] + extra == held
        try:
            stream = ObjectStream(
                self.downloader.parts,
                self.budget,
                parsed,
                info,
                window=planned[0],
                part_size=planned[1],
                held=held,
            )
            return stream.start()
        except BaseException:
            self.budget.unhold(held)
            raise

    def _stream_window(
        self, window: int | str | None, part_size: int | str | None, extra: int = 0
    ) -> tuple[int, int | None]:
        """The window an ordered stream asks for, and its part size if one is
        asked for, validated against what open streams may hold."""
        config = self.downloader.config
        room = self.budget.holdable - extra
        if window is None:
            window_bytes = min(DEFAULT_STREAM_WINDOW, config.memory_limit // 2, room)
        else:
            window_bytes = parse_size(window)
        part_bytes = parse_size(part_size) if part_size is not None else None
        smallest = stream_part_size(window_bytes, part_bytes)
        if smallest < 1 or window_bytes < smallest:
            raise ConfigError(
                f"the stream window ({window_bytes} bytes) must hold at least one part "
                f"({smallest} bytes)"
            )
        if window_bytes > room:
            raise ConfigError(
                f"the stream window ({window_bytes} bytes) leaves no room in memory_limit "
                f"({config.memory_limit} bytes) for GETs: open streams may hold "
                f"{self.budget.holdable} bytes of it"
                + (f", {extra} of them beside this window" if extra else "")
            )
        return window_bytes, part_bytes

    async def parse_stream(
        self,
        source: str | Source,
        parse: Callable[[BinaryIO, ObjectInfo], Iterable[list[T]]],
        *,
        version_id: str | None = None,
        window: int | str | None = None,
        part_size: int | str | None = None,
    ) -> AsyncGenerator[list[T], None]:
        """Batches of what ``parse`` makes of the object, parsed on a worker
        thread while the object downloads. See the module docstring."""
        loop = asyncio.get_running_loop()
        # The pipeline's buffers are held with the window, in one holding: held
        # apart, pipelines waiting for windows could hold all the budget.
        stream = await self.open_stream(source, version_id, window, part_size, extra=PIPELINE_COST)
        try:
            channel: Channel[T] = Channel(loop)
            reader = ObjectReader(
                stream, channel.call, buffer_size=THREAD_READER_BUFFER, closes_stream=False
            )
            channel.start(lambda: parse(reader, stream.info), name="s3pull-parse")
            try:
                while (batch := await channel.receive()) is not None:
                    yield batch
            finally:
                channel.stop()
                await stream.stop()  # a thread waiting for bytes gets "closed" now
                await channel.finished()
        finally:
            await stream.aclose()  # the thread is done with its buffers: give them back

    def stream_items(
        self,
        source: str | Source,
        make: Callable[..., StreamParser[T]],
        *,
        version_id: str | None = None,
        window: int | str | None = None,
        part_size: int | str | None = None,
        **options: Any,
    ) -> AsyncGenerator[T, None]:
        """The items ``make(source, **options)`` parses from the object, on a
        worker thread while it downloads (the async client's stream consumers).

        ``make`` runs now: a bad option is an error before any request.
        """
        parsed = parse_source(source, version_id=version_id)
        parser = make(parsed, **options)
        batches = self.parse_stream(parsed, parser.batches, window=window, part_size=part_size)
        return _flatten(batches)

    def read_items(
        self,
        run: Run,
        source: str | Source,
        make: Callable[..., StreamParser[T]],
        *,
        version_id: str | None = None,
        window: int | str | None = None,
        part_size: int | str | None = None,
        **options: Any,
    ) -> Iterator[T]:
        """Like :meth:`stream_items`, parsed in the caller's thread: the sync
        client's, whose ``run`` takes each refill of the reader to the loop."""
        parsed = parse_source(source, version_id=version_id)
        parser = make(parsed, **options)
        return self._read_items(run, parsed, parser, window, part_size)

    def _read_items(
        self,
        run: Run,
        source: Source,
        parser: StreamParser[T],
        window: int | str | None,
        part_size: int | str | None,
    ) -> Iterator[T]:
        stream: ObjectStream = run(self.open_stream(source, None, window, part_size))
        with ObjectReader(stream, run) as reader:
            yield from parser.parse(reader, stream.info)

    async def read(self, source: str | Source, window: int) -> bytes:
        """The whole of a small object (a manifest), through an ordered stream."""
        stream = await self.open_stream(source, window=window)
        try:
            return await stream.read()
        finally:
            await stream.aclose()

    # -- temp files ------------------------------------------------------------

    async def download_temp(
        self,
        source: str | Source,
        version_id: str | None = None,
        dir: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Download to a file in a new private temp directory (the file keeps
        the object's name); remove it with :func:`remove_temp`."""
        # Imported here, as in ``remove_temp``: shutil loads the bz2 and lzma
        # modules (~2 ms), which no plain download needs.
        import shutil
        import tempfile

        parsed = parse_source(source, version_id=version_id)
        name = safe_name(parsed.name or "download", source=parsed.redacted)
        directory = Path(tempfile.mkdtemp(prefix="s3pull-", dir=dir))
        try:
            result = await self.downloader.download(parsed, directory / name)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return result.path

    async def file_items(
        self, source: str | Source, parse: Callable[[Path], Iterator[T]]
    ) -> AsyncGenerator[T, None]:
        """What ``parse`` reads from the object's local copy, one item per hop
        to a worker thread (parsing is CPU work: off the event loop); the copy
        is removed when the iteration ends, however it ends."""
        path = await self.download_temp(source)
        items = parse(path)
        try:
            while (item := await asyncio.to_thread(next, items, _END)) is not _END:
                yield item
        finally:
            _close(items)
            remove_temp(path)

    def read_file(
        self, run: Run, source: str | Source, parse: Callable[[Path], Iterator[T]]
    ) -> Iterator[T]:
        """Like :meth:`file_items`, parsed in the caller's thread (the sync client)."""
        path: Path = run(self.download_temp(source))
        try:
            yield from parse(path)
        finally:
            remove_temp(path)


_END: Any = object()


async def _flatten(batches: AsyncGenerator[list[T], None]) -> AsyncGenerator[T, None]:
    # When our consumer stops, the pipeline must stop now (thread ended,
    # stream closed, budget back), not whenever the garbage collector gets to it.
    try:
        async for batch in batches:
            for item in batch:
                yield item
    finally:
        await batches.aclose()


def _close(items: Iterator[Any]) -> None:
    """Close a parser's generator (and the file it holds open), unless a
    worker thread that the caller's cancellation left behind is still inside
    it: then it closes when that thread is done with it and it is collected."""
    try:
        items.close()  # type: ignore[attr-defined]
    except ValueError:  # "generator already executing"
        pass


def remove_temp(path: Path) -> None:
    """Remove a file made by :meth:`Pipelines.download_temp` and its private directory."""
    import shutil

    shutil.rmtree(path.parent, ignore_errors=True)


async def copy_stream(stream: ObjectStream, write: Callable[[memoryview], object]) -> None:
    """Hand every byte of ``stream``, in order, to ``write`` (which writes all
    it is given). ``write`` runs in a thread, so a slow reader at the other
    end (a pipe, a terminal) never stops the event loop from fetching ahead."""
    buffer = bytearray(COPY_BUFFER)
    while filled := await stream.readinto(buffer):
        await asyncio.to_thread(write, memoryview(buffer)[:filled])
