"""What a worker child does with a task: one sync ``Client``, one event loop.

Each prefork child builds its clients after the fork (``worker_process_init``)
or at its first task, never at import: the sync ``Client`` runs every
download on one event-loop thread of its own process, and a loop, its
threads and its sockets do not survive ``fork``. A child keeps one client
per endpoint and configuration it was sent (a fleet serves any endpoint),
each with the child's memory budget (``S3PULL_MEMORY_LIMIT`` shared by the
worker's children), whatever budget the submitter had: memory is the
worker's to know.

A shard runs through ``s3pull.executors.run_shard``, which is
``download_many``: the same code as in process and in the local pool. Its
outcomes go back as JSON, per-object failures included: a task fails only
when s3pull itself cannot run.

Interrupted tasks. A soft time limit (``SoftTimeLimitExceeded``, raised in
the child's main thread while it waits for the loop thread) cancels the
shard's coroutine; the sync facade waits until its cleanup (the temp files
and journals removed) is done before the exception goes on. The items
without an outcome then fail, saying so. A child that dies (SIGKILL, the OOM
killer) cannot say anything: its shard is delivered again (``task_acks_late``
and ``task_reject_on_worker_lost``), and each delivery is counted in Redis;
past ``max_deliveries`` the shard is dead-lettered: its objects fail with
``DeadLetterError`` rather than killing worker after worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any

from .._config import TransferConfig
from .._errors import DeadLetterError, S3PullError
from .._results import BatchResult, ObjectOutcome
from .._sync import Client
from ..executors import EventLog, config_from_json, failed_outcome, remove_leftovers, run_shard
from ..metrics import MULTIPROC_ENV
from ..planning import Shard
from ..scheduling import RedisBreakerStore
from ._once import already_there, remember, tag, task_lock
from ._reply import FLUSH_ITEMS, FLUSH_SECONDS, PROGRESS_SECONDS, Redis, send
from ._settings import child_budget

#: What an endpoint may say (credentials are not among them: a worker uses
#: its own credential chain).
ENDPOINT_FIELDS = ("endpoint_url", "region", "addressing_style", "sign")
#: Clients a child keeps, at most (one per endpoint and configuration).
MAX_CLIENTS = 8
#: The Redis list of dead-lettered shards (JSON: task id, deliveries, shard).
DEAD_LETTERS = "s3pull:dead"
#: How long a delivery counter lives.
DELIVERIES_EXPIRE = 7 * 24 * 3600


class Child:
    """The state of one worker child: its clients, its budget, and the log of
    its clients' events (kept only while a task's submitter wants them: a
    child runs one task at a time)."""

    def __init__(self, concurrency: int, redis: Redis | None = None) -> None:
        self.budget = child_budget(concurrency)
        self.redis = redis
        self.events = EventLog(enabled=False)
        self._clients: dict[str, Client] = {}

    def client(self, config: dict[str, Any] | None, endpoint: dict[str, Any] | None) -> Client:
        """The client for ``endpoint`` and ``config`` (built at first use)."""
        where = {name: value for name, value in (endpoint or {}).items() if name in ENDPOINT_FIELDS}
        key = json.dumps([config, where], sort_keys=True)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._clients.pop(next(iter(self._clients))).close()
            base = config_from_json(config) if config is not None else TransferConfig()
            built = replace(base, memory_limit=self.budget, processes=1)
            # Under prometheus_client's multiprocess mode the child records
            # metrics into its files; the worker serves them (see _app).
            recording = bool(os.environ.get(MULTIPROC_ENV))
            client = Client(config=built, subscribers=[self.events], metrics=recording, **where)
            if self.redis is not None:
                # Object breakers shared by the fleet: one worker's failures hold the others.
                store = RedisBreakerStore(self.redis, built.breakers)
                client._client().breakers.store = store
            self._clients[key] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class _Reply:
    """Outcomes and events on their way to the batch's reply list, sent in
    small batches: outcomes as they come (``due``), the events of objects in
    flight (progress) every ``PROGRESS_SECONDS`` at most (``tick``)."""

    def __init__(
        self, redis: Redis | None, key: str | None, task_id: str, events: EventLog | None = None
    ) -> None:
        self.redis = redis if key is not None else None
        self.key = key or ""
        self.task_id = task_id
        self.events = events if self.redis is not None else None
        self._pending: list[list[Any]] = []
        self._sent = time.monotonic()

    def due(self) -> bool:
        return len(self._pending) >= FLUSH_ITEMS or time.monotonic() - self._sent >= FLUSH_SECONDS

    def add(self, line: dict[str, Any]) -> None:
        if self.redis is not None:
            self._pending.append([line["id"], {k: v for k, v in line.items() if k != "id"}])

    def flush(self) -> None:
        events = self.events.take() if self.events is not None else []
        if self.redis is not None and (self._pending or events):
            message: dict[str, Any] = {"t": self.task_id, "o": self._pending}
            if events:
                message["e"] = events
            send(self.redis, self.key, message)
        self._pending = []
        self._sent = time.monotonic()

    async def tick(self) -> None:
        """While a shard runs: its objects' progress, though none has finished."""
        while self.events is not None:
            await asyncio.sleep(PROGRESS_SECONDS)
            if self.events.pending():
                self.flush()

    def end(self) -> None:
        self.flush()
        if self.redis is not None:
            send(self.redis, self.key, {"t": self.task_id, "end": True})


def run_shard_task(
    client: Client,
    shard: dict[str, Any],
    options: dict[str, Any],
    *,
    redis: Redis | None,
    reply: str | None,
    task_id: str,
    deliveries: int,
    max_deliveries: int,
    events: EventLog | None = None,
) -> dict[str, Any]:
    """Run one shard; return ``{"outcomes": [...], "summary": {...}}`` (JSON).

    The outcomes also go to ``reply`` as they finish, and so do the events of
    ``client`` if ``events`` (its subscriber) is given. Failures are outcomes,
    and so is a soft time limit (the items left fail); any other interruption
    fails the items left and is raised again.
    """
    lines: list[dict[str, Any]] = []
    channel = _Reply(redis, reply, task_id, events)

    async def collect(todo: dict[str, Any]) -> None:
        ticking = asyncio.create_task(channel.tick())
        try:
            async for line in run_shard(client._client(), todo, options):
                tag(line, task_id)
                lines.append(line)
                channel.add(line)
                if channel.due():
                    channel.flush()  # a short Redis round trip, a few times a second at most
        finally:
            ticking.cancel()

    if events is not None:
        events.take()  # what an earlier task left, if it was interrupted
        events.enabled = True
    with task_lock(redis, task_id) as finished, _listening(events):
        if finished is not None:
            # Another copy of this task ran it to the end while we waited.
            for line in finished["outcomes"]:
                channel.add(line)
            channel.end()
            return finished
        try:
            if deliveries > max_deliveries:
                _dead_letter(shard, lines, channel, redis, task_id, deliveries)
            else:
                _run(shard, lines, channel, collect, client)
        finally:
            if deliveries > 1:
                # An earlier delivery's child died mid-shard and could not remove
                # its temp files; this run resumed from them or is done with them.
                # (A copy still running holds its files locked: they are kept.)
                remove_leftovers(list(Shard.from_json(shard).items))
            channel.end()
        result = _result(lines)
        remember(redis, task_id, result)
    return result


@contextlib.contextmanager
def _listening(events: EventLog | None) -> Iterator[None]:
    """The child's events are kept for this task only."""
    try:
        yield
    finally:
        if events is not None:
            events.enabled = False


def _run(
    shard: dict[str, Any],
    lines: list[dict[str, Any]],
    channel: _Reply,
    collect: Callable[[dict[str, Any]], Coroutine[Any, Any, None]],
    client: Client,
) -> None:
    """Run the items of ``shard`` that the destination does not hold already."""
    items = Shard.from_json(shard).items
    todo = []
    for item in items:
        line = already_there(item, channel.task_id)
        if line is not None:
            lines.append(line)
            channel.add(line)
        else:
            todo.append(item)
    if not todo:
        return
    try:
        # The sync facade's loop thread: run_shard is the async core itself.
        client._run(collect(Shard(tuple(todo)).to_json()))
    except BaseException as interrupted:
        # Cancelled on the loop thread, its temp files removed, by now.
        why = f"not downloaded: {_why(interrupted)}"
        _fail_rest(shard, lines, channel, why, S3PullError)
        if type(interrupted).__name__ != "SoftTimeLimitExceeded":
            raise
        # A time limit is the shard's outcome (its objects failed), not the task's error.


def _dead_letter(
    shard: dict[str, Any],
    lines: list[dict[str, Any]],
    channel: _Reply,
    redis: Redis | None,
    task_id: str,
    deliveries: int,
) -> None:
    """Fail the shard's items instead of running them once more, and say so."""
    why = (
        f"dead-lettered: delivered {deliveries - 1} times, and each time the worker "
        "running it died (killed for memory? a crash?)"
    )
    _fail_rest(shard, lines, channel, why, DeadLetterError)
    if redis is not None:  # for whoever looks after the fleet: what, and how often
        send(redis, DEAD_LETTERS, {"task": task_id, "deliveries": deliveries - 1, "shard": shard})


def _why(error: BaseException) -> str:
    name = type(error).__name__
    if name == "SoftTimeLimitExceeded":
        return "the task's soft time limit was reached"
    return f"the task was interrupted ({name}: {error})"


def _fail_rest(
    shard: dict[str, Any],
    lines: list[dict[str, Any]],
    channel: _Reply,
    why: str,
    kind: type[S3PullError],
) -> None:
    """Fail every item of ``shard`` that has no outcome in ``lines``."""
    done = {line["id"] for line in lines}
    for item in Shard.from_json(shard).items:
        if item.id not in done:
            outcome = failed_outcome(item, why, kind)
            line = {"id": item.id, **outcome.to_json()}
            lines.append(line)
            channel.add(line)
            if channel.events is not None and isinstance(outcome.error, S3PullError):
                # No download said it: the submitter's subscribers hear it from here.
                channel.events.on_error(outcome.source, outcome.error)


def _result(lines: list[dict[str, Any]]) -> dict[str, Any]:
    summary = BatchResult()
    for line in lines:
        summary.add(ObjectOutcome.from_json({k: v for k, v in line.items() if k != "id"}))
    return {"outcomes": lines, "summary": summary.to_json()}


def count_delivery(redis: Redis | None, task_id: str) -> int:
    """Count one more delivery of ``task_id``; its number (1 without Redis)."""
    if redis is None:
        return 1
    key = f"s3pull:deliveries:{task_id}"
    with redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, DELIVERIES_EXPIRE)
        count, _ = pipe.execute()
    return int(count)


def forget_deliveries(redis: Redis | None, task_id: str) -> None:
    """The task ended (it was not killed): its counter is no longer needed."""
    if redis is not None:
        redis.delete(f"s3pull:deliveries:{task_id}")
