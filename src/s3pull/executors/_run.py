"""What the local pool and the Celery executor share: one batch, planned in
this process, its shards run elsewhere, its outcomes merged into one stream.

A run plans the items into shards as they come (``_work``, each executor's
own: worker processes over pipes, or tasks over a broker), and puts every
outcome on one queue; :meth:`ShardedRun.run` yields them in completion order
and stops early on the first failure under ``fail_fast``, as the in-process
batch does. However the run ends (done, failed, cancelled, a failure
elsewhere), ``_stop`` runs before the run's last word, and ``_close`` after
the consumer has stopped reading. A listing or manifest that broke half way
is said last: what was planned before still runs, as in process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from .._config import TransferConfig
from .._errors import S3PullError
from .._events import Events
from .._results import FAILED, ObjectOutcome
from ..planning import ShardItem
from ..scheduling import BatchItem, first_cause, planned_item, shard_item, unplanned_outcome
from ._shard import ShardOptions


@dataclass(frozen=True, kw_only=True)
class PoolSetup:
    """What a batch's workers are built from, by the local pool or the fleet.

    Attributes:
        config: the client's configuration (each worker gets an equal share
            of its memory budget).
        endpoint: the client's endpoint arguments (``endpoint_url``, ``region``...).
        events: the client's subscribers, which hear every worker's events.
        options: the batch's options.
    """

    config: TransferConfig
    endpoint: dict[str, Any]
    events: Events
    options: ShardOptions


class ShardedRun:
    """One batch whose shards run outside this event loop; see the module docstring."""

    def __init__(self, setup: PoolSetup) -> None:
        self.setup = setup
        self._outcomes: asyncio.Queue[ObjectOutcome | BaseException | None] = asyncio.Queue(1024)
        #: Every item has been planned (the listing is over).
        self._fed = False
        #: Why the listing ended early, said after every planned item's outcome.
        self._listing_error: S3PullError | None = None

    async def run(self, items: AsyncIterable[BatchItem]) -> AsyncGenerator[ObjectOutcome, None]:
        """Run the batch; yield each outcome as it finishes."""
        runner = asyncio.create_task(self._run_all(items))
        try:
            while (outcome := await self._outcomes.get()) is not None:
                if isinstance(outcome, BaseException):
                    raise outcome
                yield outcome
                if self.setup.options.fail_fast and outcome.status == FAILED:
                    return
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await self._close()

    async def _run_all(self, items: AsyncIterable[BatchItem]) -> None:
        error: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                await self._work(group, items)
        except BaseExceptionGroup as failures:
            error = first_cause(failures)
        finally:
            # Told only after the stop: the reader of the outcomes cancels this
            # task as soon as it hears, and its workers must still be stopped
            # and waited for (a cancellation of the batch waits likewise).
            await _to_the_end(self._stop())
        await self._outcomes.put(error if error is not None else self._listing_error)

    async def _planned(self, items: AsyncIterable[BatchItem]) -> AsyncIterator[ShardItem]:
        """Each item that goes into a shard, numbered in the batch's order.

        Items refused while planning (an unsafe key, a clash) have their
        outcome now; a listing or manifest that breaks ends the items and is
        remembered: what was planned still runs, then the batch says why it
        ended, as in process.
        """
        number = 0
        try:
            async for item in items:
                if (unplanned := unplanned_outcome(item)) is not None:
                    await self._outcomes.put(unplanned)
                    continue
                yield shard_item(number, item)
                number += 1
        except S3PullError as error:
            self._listing_error = error

    async def _work(self, group: asyncio.TaskGroup, items: AsyncIterable[BatchItem]) -> None:
        """Plan ``items`` and run their shards until every item has an outcome."""
        raise NotImplementedError

    async def _stop(self) -> None:
        """Once the work has ended, whatever ended it."""

    async def _close(self) -> None:
        """Once nobody reads the outcomes any more."""


async def _to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Await ``work`` to its end even if the caller is cancelled meanwhile;
    the cancellation is raised afterwards."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = cancelled or not task.done()
    if cancelled:
        raise asyncio.CancelledError
    task.result()


def failed_outcome(
    item: ShardItem, why: str, kind: type[S3PullError] = S3PullError
) -> ObjectOutcome:
    """The outcome of a planned item that was not downloaded, for ``why``."""
    planned = planned_item(item)
    source = planned.source.redacted
    return ObjectOutcome(source, planned.destination, FAILED, error=kind(why, source=source))
