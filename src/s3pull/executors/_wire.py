"""The pool's wire: JSON lines between the parent and its worker processes.

Parent to worker, on the worker's stdin: one ``{"init": ...}`` line (the
configuration, the endpoint, the batch options, whether events are wanted),
then one ``{"shard": ...}`` line per shard; end of file means no more shards.

Worker to parent, on its stdout: ``{"ready": pid}`` once its client is
built, then ``{"o": [[id, outcome], ...], "e": [event, ...]}`` messages, and
``{"end": true}`` after the last outcome. Outcomes and events are gathered
for up to ``FLUSH_SECONDS`` (or ``FLUSH_ITEMS`` of them) per message: one
line per object would cost the parent, which reads every worker's, more CPU
than the object's own download. Progress events are coalesced to the last
one per object in each message; they only drive a display.

Events (:class:`EventLog`, which a Celery worker child sends through its
reply channel too) are short lists: ``["q", source, size]`` (queued), ``["p", source,
done, total]`` (progress), ``["r", source, error, attempt, delay]`` (retry),
``["d", result]`` (done), ``["x", source, error]`` (failed), and, whether or
not events are wanted, ``["b", endpoint, change, failures, last_failure]``:
the worker's endpoint breaker changed (see ``scheduling._breaker``). The
parent passes that one on to every other worker as a ``{"breaker": [...]}``
line, which the worker adopts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .._errors import S3PullError
from .._events import Events, Subscriber
from .._results import DownloadResult, ObjectOutcome, error_from_json, error_to_json
from ..scheduling import BreakerState

#: The longest line either side accepts (a shard of keys of up to 1 KiB each
#: is ~150 KB; outcomes carry error messages).
LINE_LIMIT = 64 << 20
#: How long outcomes and events wait to be sent with others, at most.
FLUSH_SECONDS = 0.02
#: How many outcomes and events a message carries before it is sent at once.
FLUSH_ITEMS = 256


class EventLog(Subscriber):
    """A process's events as short lists (see the module docstring), kept
    until taken: what a worker sends back for the submitter to ``replay``.

    Progress is coalesced to the last event per object: it only drives a
    display, and the last word is the one that counts. Nothing is kept while
    ``enabled`` is False (nobody listens at the other end).
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._events: list[list[Any]] = []
        self._progress: dict[str, list[Any]] = {}

    def pending(self) -> bool:
        return bool(self._events or self._progress)

    def take(self) -> list[list[Any]]:
        """The events kept so far (progress last), and forget them."""
        events = self._events + list(self._progress.values())
        self._events, self._progress = [], {}
        return events

    def _event(self, event: list[Any]) -> None:
        if self.enabled:
            self._events.append(event)
            self._added()

    def _added(self) -> None:
        """An event was kept (the pool's outbox may have a full message)."""

    def on_queued(self, source: str, size: int) -> None:
        self._event(["q", source, size])

    def on_progress(self, source: str, done: int, total: int) -> None:
        if self.enabled:
            self._progress[source] = ["p", source, done, total]

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        self._event(["r", source, error_to_json(error), attempt, delay])

    def on_done(self, result: DownloadResult) -> None:
        self._progress.pop(result.source, None)
        self._event(["d", result.to_json()])

    def on_error(self, source: str, error: S3PullError) -> None:
        self._progress.pop(source, None)
        self._event(["x", source, error_to_json(error)])


class Outbox(EventLog):
    """The pool worker's side: outcomes and (if wanted) events, sent in batches."""

    def __init__(self, writer: asyncio.StreamWriter, *, events: bool) -> None:
        super().__init__(enabled=events)
        self.writer = writer
        self._outcomes: list[list[Any]] = []
        self._full = asyncio.Event()

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message).encode() + b"\n")

    def outcome(self, number: int, outcome: ObjectOutcome) -> None:
        self._outcomes.append([number, outcome.to_json()])
        self._added()

    def _added(self) -> None:
        if len(self._outcomes) + len(self._events) >= FLUSH_ITEMS:
            self._full.set()

    async def flush(self) -> None:
        """Send what is gathered, and wait until the pipe takes it."""
        if self._outcomes or self.pending():
            self.send({"o": self._outcomes, "e": self.take()})
            self._outcomes = []
        self._full.clear()
        await self.writer.drain()

    async def run(self) -> None:
        """Flush every ``FLUSH_SECONDS``, or sooner when a message is full."""
        while True:
            try:
                await asyncio.wait_for(self._full.wait(), FLUSH_SECONDS)
            except TimeoutError:
                pass
            await self.flush()

    def breaker(self, endpoint: str, change: str, state: BreakerState) -> None:
        """``Breakers.on_endpoint``: tell the parent, for the other workers."""
        self._events.append(["b", endpoint, change, state.failures, state.last_failure])
        self._full.set()  # the others should know now


def replay(event: list[Any], events: Events) -> None:
    """The parent's side: hand one worker event to the parent's subscribers."""
    kind = event[0]
    if kind == "q":
        events.queued(event[1], event[2])
    elif kind == "p":
        events.progress(event[1], event[2], event[3])
    elif kind == "r":
        events.retry(event[1], _error(event[2]), event[3], event[4])
    elif kind == "d":
        events.done(DownloadResult.from_json(event[1]))
    elif kind == "x":
        events.error(event[1], _error(event[2]))


def _error(data: dict[str, Any]) -> S3PullError:
    error = error_from_json(data)
    assert isinstance(error, S3PullError)
    return error


def adopt(line: list[Any]) -> tuple[str, str, BreakerState]:
    """A ``breaker`` line's endpoint, change and state, for ``Breakers.adopt``."""
    endpoint, change, failures, last_failure = line
    return endpoint, change, BreakerState(change, failures, last_failure, None, None)
