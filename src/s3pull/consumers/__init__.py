"""Consumers: what reads objects rather than storing them.

Lines and CSV rows parsed while an object downloads (:func:`iter_lines`,
:func:`iter_csv`), Parquet record batches from a temp file
(:func:`iter_parquet_batches`), and S3 Inventory reports (:class:`Inventory`).
They sit on top of the sinks (the ordered stream, the temp file) and draw
from the same memory budget; each module's docstring gives its formula.
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
