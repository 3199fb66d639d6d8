"""s3pull on Celery: a prefix, a key list or an inventory over a worker fleet.

Install ``s3pull[celery]``. Workers: ``s3pull worker --broker redis://HOST:6379/0``
(or ``celery -A s3pull.celery worker`` with ``S3PULL_CELERY_BROKER`` set).
Submitting: ``s3pull cp -r s3://bucket/prefix /shared/dir --celery
redis://HOST:6379/0``, or from Python::

    from s3pull import AsyncClient
    from s3pull.celery import CeleryExecutor, make_app

    app = make_app("redis://HOST:6379/0")
    async with AsyncClient(executor=CeleryExecutor(app)) as client:
        batch = await client.download_prefix("s3://bucket/prefix/", "/shared/dir")

A batch is planned where it is submitted and cut into shards; each shard is
one ``s3pull.download_shard`` task, run by ``download_many`` in a worker
child, the same code as in process (see ``s3pull.executors``). Outcomes come
back as they finish. ``s3pull.download`` (one object) and ``s3pull.fanout``
(plan in a worker) are there for code that sends tasks itself. The
destination is a path the workers see: a shared volume, or this machine.

Nothing here is imported by ``import s3pull``: Celery is loaded only when
this package is.
"""

from __future__ import annotations

from typing import Any

from .._config import BreakerConfig
from ..scheduling import RedisBreakerStore
from ._app import BROKER_ENV, make_app, register
from ._executor import CeleryExecutor
from ._settings import (
    LARGE_QUEUE,
    LARGE_THRESHOLD,
    QUEUE,
    child_budget,
    queue_for,
    route_by_size,
    worker_settings,
)

__all__ = [
    "BROKER_ENV",
    "LARGE_QUEUE",
    "LARGE_THRESHOLD",
    "QUEUE",
    "CeleryExecutor",
    "RedisBreakerStore",
    "app",
    "child_budget",
    "fleet_breakers",
    "make_app",
    "queue_for",
    "register",
    "route_by_size",
    "worker_settings",
]

_app: Any = None


def fleet_breakers(url: str, config: BreakerConfig | None = None) -> RedisBreakerStore:
    """The object breakers a fleet on the Redis at ``url`` shares: list them
    (``tracked()``, ``state(key)``) or reset them (``reset(key)``, ``reset()``).

    Example:
        >>> store = fleet_breakers("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> [store.state(key) for key in store.tracked()]  # doctest: +SKIP
        [('open', 3, 'ServerError: 500 ...', 241.5)]
        >>> store.reset()  # doctest: +SKIP
    """
    import redis

    return RedisBreakerStore(redis.Redis.from_url(url), config or BreakerConfig())


def __getattr__(name: str) -> Any:
    """``app``: the default app (``S3PULL_CELERY_BROKER``), built at first use,
    so that ``celery -A s3pull.celery worker`` finds it and importing this
    package connects to nothing."""
    global _app
    if name == "app":
        if _app is None:
            _app = make_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
