"""Parquet record batches of an object, from a temp file on disk.

Parquet keeps its schema and row-group index in a footer at the end of the
file, and readers jump between column chunks: it needs random access, which
an ordered stream cannot give. So the object is downloaded (in parallel,
verified, atomically) into a private temp file with ``download_to_temp``,
read one row group at a time with ``pyarrow.parquet.ParquetFile.iter_batches``
— never the whole file in memory — and the file is removed when the iteration
ends, however it ends. Memory: the download's GETs (charged to the budget)
plus one row group's selected columns, decoded (pyarrow's, not charged).

pyarrow is an optional dependency: ``pip install 's3pull[parquet]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from .._client import AsyncClient, remove_temp
from .._errors import ConfigError
from .._source import Source
from .._sync import Client

#: Rows per record batch unless asked otherwise (pyarrow's own default).
DEFAULT_BATCH_SIZE = 65536


def parquet_module() -> Any:
    """``pyarrow.parquet``, or a clear error saying how to get it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("reading Parquet needs pyarrow: pip install 's3pull[parquet]'") from exc
    return pq


def parquet_batches(path: Path, columns: Sequence[str] | None, batch_size: int) -> Iterator[Any]:
    """Record batches of a local Parquet file, row group by row group."""
    pq = parquet_module()
    with pq.ParquetFile(path) as parquet:
        yield from parquet.iter_batches(
            batch_size=batch_size, columns=list(columns) if columns is not None else None
        )


def close_batches(batches: Iterator[Any]) -> None:
    """Close a batch generator (and its ParquetFile), unless a worker thread
    that the caller's cancellation left behind is still inside it: then it
    closes when that thread is done with it and it is collected."""
    try:
        batches.close()  # type: ignore[attr-defined]
    except ValueError:  # "generator already executing"
        pass


def _sync_batches(
    client: Client, source: str | Source, columns: Sequence[str] | None, batch_size: int
) -> Iterator[Any]:
    with client.download_to_temp(source) as path:
        yield from parquet_batches(path, columns, batch_size)


async def _async_batches(
    client: AsyncClient, source: str | Source, columns: Sequence[str] | None, batch_size: int
) -> AsyncIterator[Any]:
    path = await client._download_temp(source, None, None)
    batches = parquet_batches(path, columns, batch_size)
    try:
        # Decoding a row group is CPU work: off the event loop, one batch per hop.
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            yield batch
    finally:
        close_batches(batches)
        remove_temp(path)


@overload
def iter_parquet_batches(
    client: Client,
    source: str | Source,
    *,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
) -> Iterator[Any]: ...
@overload
def iter_parquet_batches(
    client: AsyncClient,
    source: str | Source,
    *,
    columns: Sequence[str] | None = ...,
    batch_size: int = ...,
) -> AsyncIterator[Any]: ...
def iter_parquet_batches(
    client: Client | AsyncClient,
    source: str | Source,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[Any] | AsyncIterator[Any]:
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
    parquet_module()  # fail before downloading anything
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(client, AsyncClient):
        return _async_batches(client, source, columns, batch_size)
    return _sync_batches(client, source, columns, batch_size)
