"""Planning: pure decisions, no I/O, no clock.

Which ranges to fetch and how many at once, whether a failure is retried
and after how long, which local path a key maps to (and whether it may be
written at all), which keys a filter keeps, how big a stream window is.
Time, sleeping and randomness are handed in, so every decision is tested
without sockets or sleeps.

May import: only the shared modules (``_config``, ``_errors``, ``_source``,
...): never scheduling, transport, sinks or consumers.

Imported by: scheduling and the clients, through this module (import-linter
checks both, see ``[tool.importlinter]`` in pyproject.toml).
"""

from ._answers import RangeIgnored, check_answer
from ._bandwidth import TokenBucket
from ._filters import KeyFilter
from ._paths import (
    LocalTarget,
    PathClaims,
    destination_file,
    key_base,
    key_to_target,
    local_destination,
    safe_name,
)
from ._ranges import Part, choose_concurrency, choose_part_size, plan_parts
from ._retry import GiveUp, RetryBudget, decide
from ._shards import SHARD_BYTES, SHARD_ITEMS, Shard, Sharder, ShardItem, cut
from ._stall import StallMeter
from ._windows import fit_window, holdable, stream_part_size

__all__ = [
    "SHARD_BYTES",
    "SHARD_ITEMS",
    "GiveUp",
    "KeyFilter",
    "LocalTarget",
    "Part",
    "PathClaims",
    "RangeIgnored",
    "RetryBudget",
    "Shard",
    "ShardItem",
    "Sharder",
    "StallMeter",
    "TokenBucket",
    "check_answer",
    "choose_concurrency",
    "choose_part_size",
    "cut",
    "decide",
    "destination_file",
    "fit_window",
    "holdable",
    "key_base",
    "key_to_target",
    "local_destination",
    "plan_parts",
    "safe_name",
    "stream_part_size",
]
