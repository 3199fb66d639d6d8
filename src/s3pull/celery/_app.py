"""The tasks, registered on a user's app or on ``s3pull.celery.app``.

``register(app)`` adds s3pull's tasks to ``app`` and connects its worker
children's start (``worker_process_init``) to the building of their state
(``_child.Child``); ``make_app(url)`` is a Celery app with s3pull's worker
preset and the tasks, on a Redis broker that is also its result backend.

- ``s3pull.download(source, destination, ...)``: one object; its
  ``DownloadResult`` as JSON. A failed download is the task's exception
  (s3pull's errors pickle, and their type and message survive JSON).
- ``s3pull.download_shard(shard, options, config, endpoint, reply, events)``:
  one shard; its outcomes and summary as JSON. Per-object failures are
  outcomes. Outcomes (and, if ``events``, the downloads' events, progress
  included) also stream to the ``reply`` list as they come.
- ``s3pull.fanout(source=... | keys=... | inventory=..., destination, ...)``:
  a prefix, a key list or an inventory, planned in the worker that runs it,
  its shards dispatched as ``download_shard`` tasks while the listing goes
  on (``CeleryExecutor``); one merged summary. It holds a worker child until
  the batch is done: route it to a queue of its own, or run at least two
  children.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._results import BatchResult
from ..metrics import MULTIPROC_ENV
from ._child import Child, count_delivery, forget_deliveries, run_shard_task
from ._documents import register_documents
from ._settings import MAX_DELIVERIES, worker_settings

#: The environment variable the default app's broker comes from.
BROKER_ENV = "S3PULL_CELERY_BROKER"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"

#: The current child's state (one per process; built after the fork).
_child: Child | None = None
_redis: Any = None
#: The worker's children, as its parent was told (``worker_init``): the
#: memory limit is shared by that many.
_concurrency: int | None = None


#: The port the worker serves ``/metrics`` on (on 127.0.0.1, or on
#: ``S3PULL_METRICS_ADDR``), if set.
METRICS_PORT_ENV = "S3PULL_METRICS_PORT"
METRICS_ADDR_ENV = "S3PULL_METRICS_ADDR"
_metrics_server: Any = None


def _start_metrics() -> None:
    """In the worker's main process, before its children start: empty the
    multiprocess directory (files of an earlier run would add to this one's
    sums, as prometheus_client's docs warn) and serve the children's metrics."""
    global _metrics_server
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    for entry in Path(directory).glob("*.db"):
        entry.unlink(missing_ok=True)
    port = os.environ.get(METRICS_PORT_ENV)
    if port:
        from prometheus_client import CollectorRegistry, multiprocess

        from ..metrics import serve

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        addr = os.environ.get(METRICS_ADDR_ENV, "127.0.0.1")
        _metrics_server = serve(int(port), addr, registry)


def _child_exited(pid: int) -> None:
    """A child is gone: its live gauges (in flight, temp bytes) leave the sums."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _state(app: Any) -> tuple[Child, Any]:
    global _child, _redis
    if _child is None:
        import redis

        concurrency = _concurrency or app.conf.worker_concurrency or os.cpu_count() or 1
        url = app.conf.broker_url or ""
        _redis = redis.Redis.from_url(url) if url.startswith(("redis://", "rediss://")) else None
        _child = Child(concurrency, _redis)
    return _child, _redis


def _forget_state() -> None:
    global _child, _redis
    _child, _redis = None, None


os.register_at_fork(after_in_child=_forget_state)


def make_app(broker: str | None = None, **settings: Any) -> Any:
    """A Celery app on ``broker`` (default ``S3PULL_CELERY_BROKER``) with the
    worker preset and s3pull's tasks; ``settings`` override the preset.

    Example:
        >>> app = make_app("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    """
    from celery import Celery

    url = broker or os.environ.get(BROKER_ENV) or DEFAULT_BROKER
    app = Celery("s3pull", broker=url, backend=url)
    app.conf.update(worker_settings())
    app.conf.update(settings)
    register(app)
    return app


def register(app: Any) -> dict[str, Any]:
    """Add s3pull's tasks to ``app``; returns them by name.

    Example:
        >>> tasks = register(my_app)  # doctest: +SKIP
        >>> tasks["s3pull.download"].delay("s3://b/k", "/shared/k")  # doctest: +SKIP
    """
    from celery.signals import worker_init, worker_process_init, worker_process_shutdown

    def started(sender: Any = None, **_: Any) -> None:
        global _concurrency
        children = getattr(sender, "concurrency", None)
        _concurrency = children if isinstance(children, int) and children > 0 else None
        _start_metrics()

    def init(**_: Any) -> None:
        _state(app)

    def shutdown(**_: Any) -> None:
        if _child is not None:
            _child.close()
        _child_exited(os.getpid())

    worker_init.connect(started, weak=False)
    worker_process_init.connect(init, weak=False)
    worker_process_shutdown.connect(shutdown, weak=False)

    @app.task(name="s3pull.download_shard", bind=True)  # type: ignore[untyped-decorator]
    def download_shard(
        self: Any,
        shard: dict[str, Any],
        options: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
        reply: str | None = None,
        events: bool = False,
    ) -> dict[str, Any]:
        child, redis = _state(app)
        task_id = self.request.id or "local"
        deliveries = count_delivery(redis, task_id)
        result = run_shard_task(
            child.client(config, endpoint),
            shard,
            options or {},
            redis=redis,
            reply=reply,
            task_id=task_id,
            deliveries=deliveries,
            max_deliveries=app.conf.get("s3pull_max_deliveries", MAX_DELIVERIES),
            events=child.events if events else None,
        )
        forget_deliveries(redis, task_id)
        return result

    @app.task(name="s3pull.download", bind=True)  # type: ignore[untyped-decorator]
    def download(
        self: Any,
        source: str,
        destination: str,
        version_id: str | None = None,
        size: int | None = None,
        config: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        child, _ = _state(app)
        client = child.client(config, endpoint)
        result = client.download_file(source, destination, version_id=version_id)
        return result.to_json()

    @app.task(name="s3pull.fanout", bind=True)  # type: ignore[untyped-decorator]
    def fanout(
        self: Any,
        destination: str,
        source: str | None = None,
        keys: list[str] | None = None,
        inventory: str | None = None,
        filters: list[list[str]] | None = None,
        options: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return run_fanout(
            app,
            destination,
            source=source,
            keys=keys,
            inventory=inventory,
            filters=filters,
            options=options,
            config=config,
            endpoint=endpoint,
        )

    def child_client(config: dict[str, Any] | None, endpoint: dict[str, Any] | None) -> Any:
        return _state(app)[0].client(config, endpoint)

    documents = register_documents(app, child_client)
    return {task.name: task for task in (download_shard, download, fanout, *documents)}


def run_fanout(
    app: Any,
    destination: str,
    *,
    source: str | None,
    keys: list[str] | None,
    inventory: str | None,
    filters: list[list[str]] | None,
    options: dict[str, Any] | None,
    config: dict[str, Any] | None,
    endpoint: dict[str, Any] | None,
) -> dict[str, Any]:
    """Plan a batch here and run its shards on the fleet; its summary as JSON."""
    from .._client import AsyncClient
    from .._sync import _loop_thread
    from ..executors import config_from_json
    from ._child import ENDPOINT_FIELDS
    from ._executor import CeleryExecutor

    if sum(x is not None for x in (source, keys, inventory)) != 1:
        raise ValueError("give one of source (a prefix), keys or inventory")
    batch = options or {}
    where = {name: value for name, value in (endpoint or {}).items() if name in ENDPOINT_FIELDS}

    async def run() -> BatchResult:
        settings: dict[str, Any] = {"config": config_from_json(config)} if config else {}
        client = AsyncClient(executor=CeleryExecutor(app), subscribers=[], **settings, **where)
        async with client:
            if source is not None:
                rules = [(rule[0], rule[1]) for rule in filters or ()]
                return await client.download_prefix(source, destination, filters=rules, **batch)
            if keys is not None:
                return await client.download_many(keys, destination, **batch)
            assert inventory is not None
            records = client.inventory(inventory, memory_share=0.5).records()
            return await client.download_many(records, destination, **batch)

    return _loop_thread().run(run()).to_json()
