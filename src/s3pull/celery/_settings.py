"""The worker preset and routing by size.

A Celery worker that downloads must not take more than it can hold, and must
not lose a task when it dies: :func:`worker_settings` is the configuration
that does both (``task_acks_late`` with ``task_reject_on_worker_lost``: a
task is acknowledged once it has finished, so a child killed mid-shard has
its shard delivered again; ``worker_prefetch_multiplier = 1``: a child holds
one message, not four, so a large object never waits behind a busy child).

Routing: a shard (or one object) whose known size is at or above a threshold
goes to the ``s3pull.large`` queue, everything else to ``s3pull``. Sizes come
from the listing or the inventory the batch was planned from; nothing asks
the store. Run workers with a large memory budget on ``s3pull.large``, and
many small ones on ``s3pull``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .._units import parse_size

#: The queue of small objects and shards of them.
QUEUE = "s3pull"
#: The queue of objects (and shards) at or above the large threshold.
LARGE_QUEUE = "s3pull.large"
#: Objects at or above this size are routed to ``LARGE_QUEUE`` (256 MiB).
LARGE_THRESHOLD = 256 << 20
#: How many times a task may be delivered before it is dead-lettered
#: (``S3PULL_MAX_DELIVERIES`` on the worker, else 3).
MAX_DELIVERIES = 3
DELIVERIES_ENV = "S3PULL_MAX_DELIVERIES"
#: The worker's memory limit (its container's, or what it may use), shared by its children.
MEMORY_ENV = "S3PULL_MEMORY_LIMIT"
#: What a child keeps for itself besides its download budget: the
#: interpreter with s3pull, Celery and their libraries (~60 MB measured).
CHILD_BASELINE = 64 << 20
#: The smallest budget a child is given, whatever the limit.
MIN_CHILD_BUDGET = 16 << 20

Router = Callable[..., dict[str, str] | None]
#: The tasks of one object, routed by the ``size`` they are given.
SIZED_TASKS = frozenset({"s3pull.download", "s3pull.pdf_split", "s3pull.pdf_text"})


def queue_for(size: int, threshold: int = LARGE_THRESHOLD) -> str:
    """The queue for work of ``size`` known bytes (its largest object).

    Example:
        >>> queue_for(1 << 30), queue_for(10)
        ('s3pull.large', 's3pull')
    """
    return LARGE_QUEUE if size >= threshold else QUEUE


def largest(shard: Mapping[str, Any]) -> int:
    """The largest known object size in a shard's JSON (0 when none is known)."""
    return max((item.get("size") or 0 for item in shard.get("items", ())), default=0)


def route_by_size(threshold: int | str = LARGE_THRESHOLD) -> Router:
    """A ``task_routes`` entry that sends s3pull's tasks to ``s3pull`` or
    ``s3pull.large`` by the size of their largest known object.

    Example:
        >>> app.conf.task_routes = (route_by_size("128MiB"),)  # doctest: +SKIP
    """
    limit = parse_size(threshold)

    def route(
        name: str, args: Any, kwargs: Mapping[str, Any] | None, options: Any, **_: Any
    ) -> dict[str, str] | None:
        if not name.startswith("s3pull."):
            return None
        kwargs = kwargs or {}
        if name == "s3pull.download_shard":
            shard = kwargs.get("shard") or (args[0] if args else {})
            return {"queue": queue_for(largest(shard), limit)}
        if name in SIZED_TASKS:
            return {"queue": queue_for(kwargs.get("size") or 0, limit)}
        return {"queue": QUEUE}

    return route


def child_budget(concurrency: int, limit: str | None = None) -> int:
    """A worker child's memory budget: the worker's limit (``S3PULL_MEMORY_LIMIT``,
    default 64 MiB per child) less each child's baseline, shared by its children.

    Example:
        >>> child_budget(2, "512MiB") >> 20
        192
    """
    text = limit if limit is not None else os.environ.get(MEMORY_ENV)
    if not text:
        return 64 << 20
    share = parse_size(text) // max(concurrency, 1) - CHILD_BASELINE
    return max(share, MIN_CHILD_BUDGET)


def worker_settings(
    *,
    max_deliveries: int | None = None,
    large_threshold: int | str = LARGE_THRESHOLD,
) -> dict[str, Any]:
    """The configuration s3pull's workers run with; ``app.conf.update(worker_settings())``.

    Args:
        max_deliveries: deliveries of one task before it is dead-lettered
            (its objects fail, saying so) instead of killing workers forever
            (default ``S3PULL_MAX_DELIVERIES``, else 3).
        large_threshold: the size from which work goes to ``s3pull.large``.

    Example:
        >>> worker_settings()["worker_prefetch_multiplier"]
        1
    """
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "task_routes": (route_by_size(large_threshold),),
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "s3pull_max_deliveries": max_deliveries
        or int(os.environ.get(DELIVERIES_ENV) or MAX_DELIVERIES),
        "s3pull_large_threshold": parse_size(large_threshold),
    }
