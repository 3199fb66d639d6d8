"""The consumers as functions of a client: ``s3pull.iter_lines(client, ...)``.

Each forwards to the client's method of the same name, which wires the
parser to a download (``scheduling._consume``). Nothing here imports a
client: a client is whatever has the method, and what it returns (a sync
iterator for a :class:`Client`, an async one for an :class:`AsyncClient`)
is what these return.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from .._source import Source
from ._parquet import DEFAULT_BATCH_SIZE
from ._text import Compression

R_co = TypeVar("R_co", covariant=True)


class LineReader(Protocol[R_co]):
    def iter_lines(self, source: str | Source, **options: Any) -> R_co: ...


class CsvReader(Protocol[R_co]):
    def iter_csv(self, source: str | Source, **options: Any) -> R_co: ...


class ParquetReader(Protocol[R_co]):
    def iter_parquet_batches(self, source: str | Source, **options: Any) -> R_co: ...


def _check(client: object, method: str) -> None:
    if not callable(getattr(client, method, None)):
        raise TypeError(f"expected an s3pull Client or AsyncClient, got {type(client).__name__}")


def iter_lines(
    client: LineReader[R_co],
    source: str | Source,
    *,
    compression: Compression = "auto",
    encoding: str = "utf-8",
    version_id: str | None = None,
    window: int | str | None = None,
    part_size: int | str | None = None,
) -> R_co:
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
    _check(client, "iter_lines")
    return client.iter_lines(
        source,
        compression=compression,
        encoding=encoding,
        version_id=version_id,
        window=window,
        part_size=part_size,
    )


def iter_csv(
    client: CsvReader[R_co],
    source: str | Source,
    *,
    header: bool = False,
    compression: Compression = "auto",
    encoding: str = "utf-8",
    version_id: str | None = None,
    window: int | str | None = None,
    part_size: int | str | None = None,
    **fmtparams: Any,
) -> R_co:
    """The CSV rows of an object, parsed while it downloads, in bounded memory.

    Rows are lists of strings, or dicts keyed by the first row with
    ``header=True`` (``csv.DictReader``). Other keyword arguments are
    ``csv`` format parameters (``delimiter="\\t"``, ``quotechar``...). The
    rest is as for :func:`iter_lines`.

    Example:
        >>> async for row in s3pull.iter_csv(client, "s3://b/rows.csv.gz"):  # doctest: +SKIP
        ...     total += int(row[2])
    """
    _check(client, "iter_csv")
    return client.iter_csv(
        source,
        header=header,
        compression=compression,
        encoding=encoding,
        version_id=version_id,
        window=window,
        part_size=part_size,
        **fmtparams,
    )


def iter_parquet_batches(
    client: ParquetReader[R_co],
    source: str | Source,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> R_co:
    """``pyarrow.RecordBatch``es of a Parquet object, read row group by row
    group from a temp file that is removed afterwards.

    Args:
        client: a :class:`Client` (sync generator) or :class:`AsyncClient`
            (async generator).
        source: ``s3://bucket/key`` or an ``http(s)://`` URL.
        columns: read only these columns (default: all).
        batch_size: at most this many rows per batch.

    Example:
        >>> for batch in s3pull.iter_parquet_batches(client, "s3://b/t.parquet"):  # doctest: +SKIP
        ...     total += pyarrow.compute.sum(batch["size"]).as_py()
    """
    _check(client, "iter_parquet_batches")
    return client.iter_parquet_batches(source, columns=columns, batch_size=batch_size)
