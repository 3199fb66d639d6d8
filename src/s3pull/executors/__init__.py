"""Executors: where a batch's shards run.

Three executors run the same shards with the same code (``download_many``):
in process (the default for small batches), the local process pool
(``TransferConfig(processes=N)``, ``--processes``: one machine's cores), and
Celery workers (a fleet). Planning cuts the batch (``planning._shards``);
:func:`run_shard` / :func:`run_shards` run a shard wherever it lands.
"""

from ._pool import (
    AUTO_MAX_AVERAGE,
    AUTO_MIN_OBJECTS,
    InProcess,
    Pool,
    cores,
    remove_leftovers,
    spread,
)
from ._run import PoolSetup, ShardedRun, failed_outcome
from ._shard import ShardOptions, config_from_json, config_to_json, run_shard, run_shards
from ._spawn import spawn_module
from ._wire import LINE_LIMIT, EventLog, Outbox, adopt, replay

__all__ = [
    "AUTO_MAX_AVERAGE",
    "AUTO_MIN_OBJECTS",
    "LINE_LIMIT",
    "EventLog",
    "InProcess",
    "Outbox",
    "Pool",
    "PoolSetup",
    "ShardOptions",
    "ShardedRun",
    "adopt",
    "config_from_json",
    "config_to_json",
    "cores",
    "failed_outcome",
    "remove_leftovers",
    "replay",
    "run_shard",
    "run_shards",
    "spawn_module",
    "spread",
]
