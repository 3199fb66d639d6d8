"""Scheduling: asyncio tasks under one memory budget.

The budget every in-flight buffer draws from, the download driver (parts in
parallel into a sink, retries, resume, stall detection), ordered streams,
the batch queue with its size lanes, per-endpoint circuit breakers and the
bandwidth throttle. It asks transport for bytes and hands them to sinks (and,
for the parsers, to consumers); which HTTP stack serves a request is
transport's business, never decided here.

May import: planning, transport, sinks, consumers and the shared modules;
never the clients (``_client``, ``_sync``), the CLI or ``s3pull.testing``.

Imported by: the clients and the root package's public names, through this
module (import-linter checks both, see ``[tool.importlinter]`` in
pyproject.toml).

``Inventory`` is loaded on first use (PEP 562): it brings the consumers
(CSV, Parquet readers; ~5 ms of start-up) that no other batch needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._batch import (
    Batch,
    BatchItem,
    BatchItems,
    is_up_to_date,
    list_objects,
    planned_item,
    shard_item,
    unplanned_outcome,
)
from ._breaker import Breakers, BreakerState
from ._breaker_store import BreakerStore, RedisBreakerStore
from ._budget import Lending, MemoryBudget
from ._consume import ObjectReader, Pipelines, copy_stream, remove_temp
from ._download import Downloader
from ._parts import first_cause
from ._prefix import prefix_items
from ._stream import ObjectStream

if TYPE_CHECKING:
    from ._inventory import Inventory

__all__ = [
    "Batch",
    "BatchItem",
    "BatchItems",
    "BreakerState",
    "BreakerStore",
    "Breakers",
    "Downloader",
    "Inventory",
    "Lending",
    "MemoryBudget",
    "ObjectReader",
    "ObjectStream",
    "Pipelines",
    "RedisBreakerStore",
    "copy_stream",
    "first_cause",
    "is_up_to_date",
    "list_objects",
    "planned_item",
    "prefix_items",
    "remove_temp",
    "shard_item",
    "unplanned_outcome",
]


def __getattr__(name: str) -> object:
    if name != "Inventory":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = importlib.import_module("._inventory", __name__).Inventory
    globals()[name] = value  # the next lookup is an ordinary one
    return value
