"""Consumers: pure parsers over what the pipeline hands them.

Lines and CSV rows (:func:`iter_lines`, :func:`iter_csv`) from an ordered
byte stream while the object downloads, Parquet record batches
(:func:`iter_parquet_batches`) from a local temp file, S3 Inventory reports
(:class:`Inventory`) from a manifest and its data files. The wiring ("open
an ordered stream, parse in a thread", "download to a temp file, parse it,
remove it") is written once, in scheduling, and what it holds is drawn from
the same memory budget; each module's docstring gives its formula.

May import: the sinks and the shared modules; never the clients (``_client``,
``_sync``), scheduling or the CLI.

Imported by: the clients, scheduling's wiring and the root package's public
names, through this module (import-linter checks both, see
``[tool.importlinter]`` in pyproject.toml).
"""

from ._inventory import (
    Inventory,
    InventoryFile,
    InventoryManifest,
    InventoryRecord,
    parse_manifest,
)
from ._parquet import iter_parquet_batches
from ._text import iter_csv, iter_lines

__all__ = [
    "Inventory",
    "InventoryFile",
    "InventoryManifest",
    "InventoryRecord",
    "iter_csv",
    "iter_lines",
    "iter_parquet_batches",
    "parse_manifest",
]
