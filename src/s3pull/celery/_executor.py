"""The submitting side: a batch's shards as Celery tasks, outcomes streamed back.

``AsyncClient(executor=CeleryExecutor(app))`` (``s3pull cp -r ... --celery
URL``) runs every batch of that client on the fleet, as the local pool runs
it on this machine's cores, with the same planning:

1. **This process plans.** The listing (key list, inventory) is walked as
   in process: keys become paths and unsafe or clashing keys are refused
   here, where every key is seen; those outcomes come at once. Every other
   item gets a number and goes to the ``Sharder``; each full shard is sent
   as one ``s3pull.download_shard`` task, routed by its largest known
   object (``queue_for``). Dispatch starts with the listing's first page.
2. **Bounded.** At most ``ahead`` shards are out at a time: the listing of a
   million keys waits while the fleet is behind, and neither this process
   nor the broker holds the batch. While nothing is out, the shard being
   filled is sent as it is (a slow listing never leaves the fleet idle).
3. **Outcomes stream back** through the batch's reply list (``_reply``) as
   each object finishes, and become this client's outcomes (``--json``
   lines). When this client has subscribers, the workers' events come the
   same way (queued, progress of the objects in flight a few times a
   second, retried, done, failed) and are replayed to them as the local
   pool's are: progress bars move while a large object downloads. A shard is done when its task says
   ``end``; an item whose outcome comes twice (a redelivered shard) counts
   once. A task that fails without a word (its result says FAILURE) fails
   the items it had not reported.

Why not a chord: a chord's header is every shard's signature at once, known
only when the listing has ended; this way shards run while it goes on, and
memory stays bounded whatever the batch's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from .._errors import ConfigError, S3PullError
from .._results import DOWNLOADED, FAILED, ObjectOutcome
from ..executors import PoolSetup, ShardedRun, config_to_json, failed_outcome, replay
from ..planning import SHARD_ITEMS, Shard, Sharder, ShardItem
from ..scheduling import BatchItem
from ..transport import S3Endpoint
from ._child import ENDPOINT_FIELDS
from ._reply import receive, reply_key
from ._settings import LARGE_THRESHOLD, largest, queue_for

#: Shards out at once, by default: enough to keep a fleet of a few dozen
#: children busy with the next shard at hand.
AHEAD = 64
#: How long a wait for outcomes lasts before the tasks' states are checked.
CHECK_SECONDS = 0.5
#: The bytes of a shard, at most, by default. A task's downloads drain at its
#: end (a child runs one task at a time, and the next waits for the broker),
#: so a shard must hold enough bytes to keep a child's connections busy for
#: several rounds: with the planner's 64 MiB, 100 x 16 MiB objects over a wan
#: profile took 3.3x as long on one child as in process (25 shards of 4
#: objects, 8 connections each); with 1 GiB, 1.1x, and two children 0.9x.
SHARD_BYTES = 1 << 30


T = TypeVar("T")


class CeleryExecutor:
    """Runs a client's batches as ``s3pull.download_shard`` tasks on ``app``.

    Args:
        app: a Celery app with a Redis broker (``make_app(url)``).
        ahead: shards out at once, at most.
        large_threshold: the size from which a shard goes to ``s3pull.large``.
        shard_items, shard_bytes: the bounds of a shard (100 objects, 1 GiB).

    Example:
        >>> client = AsyncClient(executor=CeleryExecutor(make_app("redis://h/0")))  # doctest: +SKIP
        >>> batch = await client.download_prefix("s3://b/logs/", "/shared/logs/")  # doctest: +SKIP
    """

    def __init__(
        self,
        app: Any,
        *,
        ahead: int = AHEAD,
        large_threshold: int | None = None,
        shard_items: int = SHARD_ITEMS,
        shard_bytes: int = SHARD_BYTES,
    ) -> None:
        self.app = app
        self.ahead = ahead
        conf_threshold = app.conf.get("s3pull_large_threshold", LARGE_THRESHOLD)
        self.large_threshold = large_threshold if large_threshold is not None else conf_threshold
        self.shard_items = shard_items
        self.shard_bytes = shard_bytes

    def __call__(
        self, items: AsyncIterable[BatchItem], setup: PoolSetup
    ) -> AsyncGenerator[ObjectOutcome, None]:
        return _Run(self, setup).run(items)


def work_arguments(setup: PoolSetup) -> dict[str, Any]:
    """What travels with every task of a batch: the configuration and the
    endpoint, no credential (a worker uses its own chain)."""
    if setup.config.sse_c_key is not None:
        raise ConfigError(
            "an SSE-C key does not travel to Celery workers: download SSE-C objects in process"
        )
    config = config_to_json(replace(setup.config, processes=1))
    endpoint = {name: setup.endpoint.get(name) for name in ENDPOINT_FIELDS}
    # As this process resolves them (AWS_ENDPOINT_URL..., AWS_REGION): the
    # workers' environment is not the submitter's.
    endpoint["endpoint_url"] = S3Endpoint(**setup.endpoint).endpoint_url
    endpoint["region"] = (
        endpoint["region"] or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    options = setup.options.to_json()
    arguments: dict[str, Any] = {"config": config, "endpoint": endpoint, "options": options}
    if setup.events.subscribers:
        # Only if heard: the events cost a message a few times a second. (Left
        # out otherwise, so that workers of an earlier s3pull still run the task.)
        arguments["events"] = True
    return arguments


class _Run(ShardedRun):
    """One batch on the fleet; see the module docstring."""

    def __init__(self, executor: CeleryExecutor, setup: PoolSetup) -> None:
        import redis

        super().__init__(setup)
        self.executor = executor
        self.arguments = work_arguments(setup)
        url = executor.app.conf.broker_url
        self.broker = _shown(url)
        try:
            self.redis = redis.Redis.from_url(url)
        except ValueError as exc:
            raise ConfigError(f"the Celery broker {self.broker}: {exc}") from None
        self.reply = reply_key(uuid.uuid4().hex)
        self._sharder = Sharder(max_items=executor.shard_items, max_bytes=executor.shard_bytes)
        #: Tasks out, and the items of each that have no outcome yet.
        self.out: dict[str, dict[int, ShardItem]] = {}
        self._room = asyncio.Event()

    async def _work(self, group: asyncio.TaskGroup, items: AsyncIterable[BatchItem]) -> None:
        # Before the listing starts: an unreachable broker is one clear error,
        # not a traceback from the first reply awaited.
        await self._broker(self.redis.ping)
        group.create_task(self._feed(items))
        await self._collect()

    async def _broker(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` against the broker, on a thread; its failure is an S3PullError."""
        import redis

        try:
            return await asyncio.to_thread(call, *args)
        except redis.exceptions.RedisError as exc:
            raise S3PullError(f"cannot reach the Celery broker {self.broker}: {exc}") from None

    async def _close(self) -> None:
        await asyncio.to_thread(self._close_reply)

    def _close_reply(self) -> None:
        # Tasks still out (fail_fast, an interrupted run) finish on their own;
        # nobody will read their outcomes.
        import redis

        with contextlib.suppress(redis.exceptions.RedisError):  # said already, if down
            self.redis.delete(self.reply)
        self.redis.close()

    async def _feed(self, items: AsyncIterable[BatchItem]) -> None:
        async for item in self._planned(items):
            for shard in self._sharder.add(item):
                await self._send(shard)
            if not self.out:
                for shard in self._sharder.flush():  # the fleet waits: send what there is
                    await self._send(shard)
        for shard in self._sharder.flush():
            await self._send(shard)
        self._fed = True
        self._room.set()

    async def _send(self, shard: Shard) -> None:
        while len(self.out) >= self.executor.ahead:
            self._room.clear()
            await self._room.wait()
        data = shard.to_json()
        queue = queue_for(largest(data), self.executor.large_threshold)
        kwargs = {"shard": data, "reply": self.reply, **self.arguments}
        result = await asyncio.to_thread(
            self.executor.app.send_task, "s3pull.download_shard", kwargs=kwargs, queue=queue
        )
        self.out[result.id] = {item.id: item for item in shard.items}

    async def _collect(self) -> None:
        while not (self._fed and not self.out):
            message = await self._broker(receive, self.redis, self.reply, CHECK_SECONDS)
            if message is None:
                await self._check_tasks()
                continue
            task = self.out.get(message["t"])
            if task is not None:  # else a late copy's, whose items are done
                for event in message.get("e", ()):
                    replay(event, self.setup.events)
            for number, data in message.get("o", ()):
                if task is not None and task.pop(number, None) is not None:
                    await self._outcome(ObjectOutcome.from_json(data), told=True)
            if message.get("end") and task is not None:
                await self._ended(message["t"], "its task ended without it")

    async def _outcome(self, outcome: ObjectOutcome, *, told: bool = False) -> None:
        """``outcome`` to the consumer, and to the subscribers unless a worker
        ``told`` them already (its events were replayed)."""
        if not (told and self.arguments.get("events")):
            events = self.setup.events
            if outcome.status == DOWNLOADED and outcome.result is not None:
                events.queued(outcome.source, outcome.result.bytes)
                events.done(outcome.result)
            elif outcome.status == FAILED and isinstance(outcome.error, S3PullError):
                events.error(outcome.source, outcome.error)
        await self._outcomes.put(outcome)

    async def _ended(self, task_id: str, why: str) -> None:
        """A task is done: any item it did not report fails, saying why."""
        left = self.out.pop(task_id)
        self._room.set()
        for item in sorted(left.values(), key=lambda item: item.id):
            await self._outcome(failed_outcome(item, f"not downloaded: {why}"))

    async def _check_tasks(self) -> None:
        """No word for a while: a task that failed outright never will send one."""
        app = self.executor.app
        for task_id in list(self.out):
            result = app.AsyncResult(task_id)
            state = await asyncio.to_thread(getattr, result, "state")
            if state == "FAILURE":
                await self._ended(task_id, f"its task failed: {result.result!r}")


def _shown(url: str) -> str:
    """The broker's URL without a password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))
