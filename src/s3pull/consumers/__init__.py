"""Consumers: pure parsers of objects, over what they are handed.

Lines and CSV rows of a binary stream (:class:`LineFormat`,
:class:`CsvFormat`), Parquet record batches of a local file
(:func:`parquet_reader`), and the manifest and data files of an S3 Inventory
(:func:`parse_manifest`, :func:`csv_records`, :func:`parquet_records`).
Nothing here opens a stream, downloads a file or imports a client: the
wiring that hands them an object being downloaded, or its temp file, is
``scheduling._consume``, used by both clients. :func:`iter_lines`,
:func:`iter_csv` and :func:`iter_parquet_batches` are the clients' methods
as functions of a client.

May import: the sinks and the shared modules; never the clients (``_client``,
``_sync``), scheduling or the CLI.

Imported by: the clients, scheduling's wiring and the root package's public
names, through this module (import-linter checks both, see
``[tool.importlinter]`` in pyproject.toml).
"""

from ._api import iter_csv, iter_lines, iter_parquet_batches
from ._inventory import (
    InventoryFile,
    InventoryManifest,
    InventoryRecord,
    csv_records,
    data_source,
    parquet_records,
    parse_manifest,
)
from ._parquet import parquet_reader
from ._text import CsvFormat, LineFormat, csv_format, line_format

__all__ = [
    "CsvFormat",
    "InventoryFile",
    "InventoryManifest",
    "InventoryRecord",
    "LineFormat",
    "csv_format",
    "csv_records",
    "data_source",
    "iter_csv",
    "iter_lines",
    "iter_parquet_batches",
    "line_format",
    "parquet_reader",
    "parquet_records",
    "parse_manifest",
]
