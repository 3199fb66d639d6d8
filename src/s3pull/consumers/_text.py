"""Lines and CSV rows of a binary stream, decompressed and parsed.

One parsing implementation (``gzip.GzipFile`` + ``io.TextIOWrapper`` +
``csv``) over whatever binary file object it is handed. The wiring
(``scheduling._consume``) hands it an object being downloaded: the sync
client's in the caller's thread, the async client's on a worker thread fed
by the ordered stream, so download, decompression and parsing overlap and
the event loop never inflates or parses anything itself.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Generic, Literal, TypeVar

from .._errors import ConfigError
from .._results import ObjectInfo
from .._source import Source
from ._batching import CountingLines, batched

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

    def parse(self, raw: BinaryIO, info: ObjectInfo) -> Iterator[T]:
        """The items of ``raw``, the bytes of the object ``info`` describes."""
        with self.open_text(raw, info) as text:
            yield from self.items(text)

    def batches(self, raw: BinaryIO, info: ObjectInfo) -> Iterator[list[T]]:
        """The items in batches, cut by item count and by characters read (to
        cross from a parsing thread to the event loop)."""
        with self.open_text(raw, info) as text:
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


def line_format(
    source: Source, *, compression: Compression = "auto", encoding: str = "utf-8"
) -> LineFormat:
    """How to read the lines of ``source`` (its compression settled from its
    name where it can be: a bad option is refused before any request)."""
    return LineFormat(compression=compression_for(source, compression), encoding=encoding)


def csv_format(
    source: Source,
    *,
    header: bool = False,
    compression: Compression = "auto",
    encoding: str = "utf-8",
    **fmtparams: Any,
) -> CsvFormat:
    """How to read the CSV rows of ``source``; see :func:`line_format`."""
    return CsvFormat(
        compression=compression_for(source, compression),
        encoding=encoding,
        header=header,
        fmtparams=fmtparams,
    )
