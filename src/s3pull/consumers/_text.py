"""Lines and CSV rows of an object, decompressed and parsed while it downloads.

One parsing implementation (``gzip.GzipFile`` + ``io.TextIOWrapper`` +
``csv``) serves both clients: the sync :class:`Client` runs it in the
caller's thread over :meth:`Client.open`; the :class:`AsyncClient` runs it on
a worker thread fed by the ordered stream (``_pipeline``), so download,
decompression and parsing overlap and the event loop never inflates or
parses anything itself.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Generic, Literal, TypeVar, overload

from .._client import AsyncClient
from .._errors import ConfigError
from .._results import ObjectInfo
from .._source import Source, parse_source
from .._sync import Client
from ._pipeline import CountingLines, batched, parse_in_thread

T = TypeVar("T")
Compression = Literal["auto", "gzip"] | None

_GZIP_SUFFIXES = (".gz", ".gzip")
_ZSTD_SUFFIXES = (".zst", ".zstd")
_ZSTD_REFUSED = (
    "zstd-compressed objects are not supported (no zstd decoder in the standard library); "
    "read the raw bytes with client.open() and a zstd library, or pass compression=None"
)


def compression_for(source: Source, compression: Compression) -> Compression:
    """Check ``compression`` and settle it from the name where it can be.

    ``"auto"`` becomes ``"gzip"`` for ``.gz`` names; other names stay
    ``"auto"`` until the object's Content-Encoding is known. ``.zst`` is
    refused here, before any request.
    """
    if compression not in ("auto", "gzip", None):
        raise ConfigError(f"compression must be 'auto', 'gzip' or None, got {compression!r}")
    if compression != "auto":
        return compression
    name = source.name.lower()
    if name.endswith(_ZSTD_SUFFIXES):
        raise ConfigError(_ZSTD_REFUSED, source=source.redacted)
    return "gzip" if name.endswith(_GZIP_SUFFIXES) else "auto"


def _decompressor(compression: Compression, info: ObjectInfo) -> str | None:
    if compression != "auto":
        return compression
    encoding = (info.content_encoding or "").lower()
    if "zstd" in encoding:
        raise ConfigError(_ZSTD_REFUSED, source=info.source)
    return "gzip" if "gzip" in encoding else None


@dataclass(frozen=True)
class TextFormat(Generic[T]):
    """How bytes become items: decompression, text decoding, then ``items()``."""

    compression: Compression = "auto"
    encoding: str = "utf-8"

    #: Newline handling of the text layer (``""`` for csv, as it requires).
    newline: str | None = None

    def items(self, lines: Iterable[str]) -> Iterable[T]:
        raise NotImplementedError

    def open_text(self, raw: BinaryIO, info: ObjectInfo) -> io.TextIOWrapper:
        binary: BinaryIO = raw
        if _decompressor(self.compression, info) == "gzip":
            # Concatenated gzip members (as `cat a.gz b.gz` makes) are read through.
            binary = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        return io.TextIOWrapper(binary, encoding=self.encoding, newline=self.newline)

    def batches(self, raw: Any) -> Iterator[list[T]]:
        """Batches of items, cut by item count and by characters read (async path)."""
        with self.open_text(raw, raw.info) as text:
            counter = CountingLines(text)
            yield from batched(self.items(counter), counter)


@dataclass(frozen=True)
class LineFormat(TextFormat[str]):
    def items(self, lines: Iterable[str]) -> Iterable[str]:
        # Universal newlines made every line end in "\n" (but perhaps the last).
        return (line[:-1] if line.endswith("\n") else line for line in lines)


@dataclass(frozen=True)
class CsvFormat(TextFormat[Any]):
    header: bool = False
    fmtparams: dict[str, Any] = field(default_factory=dict)
    newline: str | None = ""

    def items(self, lines: Iterable[str]) -> Iterable[Any]:
        if self.header:
            return csv.DictReader(lines, **self.fmtparams)
        return csv.reader(lines, **self.fmtparams)


def _sync_items(
    client: Client, source: Source, fmt: TextFormat[T], options: dict[str, Any]
) -> Iterator[T]:
    with client.open(source, **options) as raw, fmt.open_text(raw, raw.info) as text:
        yield from fmt.items(text)


async def _async_items(
    client: AsyncClient, source: Source, fmt: TextFormat[T], options: dict[str, Any]
) -> AsyncGenerator[T, None]:
    # aclosing: when our consumer stops, the pipeline must stop now (thread
    # ended, stream closed, budget back), not whenever the garbage collector
    # gets to it.
    async with aclosing(parse_in_thread(client, source, fmt.batches, **options)) as batches:
        async for batch in batches:
            for item in batch:
                yield item


def _iterate(
    client: Client | AsyncClient,
    source: str | Source,
    fmt: TextFormat[T],
    version_id: str | None,
    window: int | str | None,
    part_size: int | str | None,
) -> Iterator[T] | AsyncIterator[T]:
    parsed = parse_source(source, version_id=version_id)
    fmt = replace(fmt, compression=compression_for(parsed, fmt.compression))
    options: dict[str, Any] = {"window": window, "part_size": part_size}
    if isinstance(client, AsyncClient):
        return _async_items(client, parsed, fmt, options)
    if isinstance(client, Client):
        return _sync_items(client, parsed, fmt, options)
    raise TypeError(f"expected an s3pull Client or AsyncClient, got {type(client).__name__}")


@overload
def iter_lines(
    client: Client,
    source: str | Source,
    *,
    compression: Compression = ...,
    encoding: str = ...,
    version_id: str | None = ...,
    window: int | str | None = ...,
    part_size: int | str | None = ...,
) -> Iterator[str]: ...
@overload
def iter_lines(
    client: AsyncClient,
    source: str | Source,
    *,
    compression: Compression = ...,
    encoding: str = ...,
    version_id: str | None = ...,
    window: int | str | None = ...,
    part_size: int | str | None = ...,
) -> AsyncIterator[str]: ...
def iter_lines(
    client: Client | AsyncClient,
    source: str | Source,
    *,
    compression: Compression = "auto",
    encoding: str = "utf-8",
    version_id: str | None = None,
    window: int | str | None = None,
    part_size: int | str | None = None,
) -> Iterator[str] | AsyncIterator[str]:
    """The lines of an object (without their line endings), decompressed and
    decoded while it downloads, in bounded memory.

    A sync generator for a :class:`Client`, an async generator for an
    :class:`AsyncClient`. Leaving the loop early stops the download; with an
    async generator use ``contextlib.aclosing`` to have that happen at once.

    Args:
        client: the client to download with.
        source: ``s3://bucket/key`` or an ``http(s)://`` URL.
        compression: ``"auto"`` (gzip for ``.gz`` names or ``Content-Encoding:
            gzip``; ``.zst`` is refused), ``"gzip"`` or None.
        encoding: the text encoding.
        version_id: read this S3 version.
        window: bytes held ahead of the parser (see ``open``).
        part_size: bytes per ranged GET (see ``open``).

    Example:
        >>> for line in s3pull.iter_lines(client, "s3://b/logs/day.log.gz"):  # doctest: +SKIP
        ...     handle(line)
    """
    fmt = LineFormat(compression=compression, encoding=encoding)
    return _iterate(client, source, fmt, version_id, window, part_size)


@overload
def iter_csv(
    client: Client,
    source: str | Source,
    *,
    header: bool = ...,
    compression: Compression = ...,
    encoding: str = ...,
    version_id: str | None = ...,
    window: int | str | None = ...,
    part_size: int | str | None = ...,
    **fmtparams: Any,
) -> Iterator[Any]: ...
@overload
def iter_csv(
    client: AsyncClient,
    source: str | Source,
    *,
    header: bool = ...,
    compression: Compression = ...,
    encoding: str = ...,
    version_id: str | None = ...,
    window: int | str | None = ...,
    part_size: int | str | None = ...,
    **fmtparams: Any,
) -> AsyncIterator[Any]: ...
def iter_csv(
    client: Client | AsyncClient,
    source: str | Source,
    *,
    header: bool = False,
    compression: Compression = "auto",
    encoding: str = "utf-8",
    version_id: str | None = None,
    window: int | str | None = None,
    part_size: int | str | None = None,
    **fmtparams: Any,
) -> Iterator[Any] | AsyncIterator[Any]:
    """The CSV rows of an object, parsed while it downloads, in bounded memory.

    Rows are lists of strings, or dicts keyed by the first row with
    ``header=True`` (``csv.DictReader``). Other keyword arguments are
    ``csv`` format parameters (``delimiter="\\t"``, ``quotechar``...). The
    rest is as for :func:`iter_lines`.

    Example:
        >>> async for row in s3pull.iter_csv(client, "s3://b/rows.csv.gz"):  # doctest: +SKIP
        ...     total += int(row[2])
    """
    fmt = CsvFormat(compression=compression, encoding=encoding, header=header, fmtparams=fmtparams)
    return _iterate(client, source, fmt, version_id, window, part_size)
