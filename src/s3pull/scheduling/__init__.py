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
"""

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
from ._budget import MemoryBudget
from ._consume import ObjectReader, Pipelines, copy_stream, remove_temp
from ._download import Downloader
from ._inventory import Inventory
from ._parts import first_cause
from ._prefix import prefix_items
from ._stream import ObjectStream

__all__ = [
    "Batch",
    "BatchItem",
    "BatchItems",
    "BreakerState",
    "BreakerStore",
    "Breakers",
    "Downloader",
    "Inventory",
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
