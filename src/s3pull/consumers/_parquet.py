"""Parquet record batches of a local file, one row group at a time.

Parquet keeps its schema and row-group index in a footer at the end of the
file, and readers jump between column chunks: it needs random access, which
an ordered stream cannot give. So the wiring (``scheduling._consume``)
downloads the object (in parallel, verified, atomically) into a private temp
file and hands this parser its path; the parser reads it one row group at a
time with ``pyarrow.parquet.ParquetFile.iter_batches`` — never the whole
file in memory — and the wiring removes the file when the iteration ends,
however it ends. Memory: the download's GETs (charged to the budget) plus
one row group's selected columns, decoded (pyarrow's, not charged).

pyarrow is an optional dependency: ``pip install 's3pull[parquet]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .._errors import ConfigError

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


def parquet_reader(
    *, columns: Sequence[str] | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> Callable[[Path], Iterator[Any]]:
    """The parser of a local Parquet file that ``iter_parquet_batches`` wires
    to a temp-file download; its options (and pyarrow) are checked now,
    before anything is downloaded."""
    parquet_module()
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    return partial(parquet_batches, columns=columns, batch_size=batch_size)
