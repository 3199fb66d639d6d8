"""The retry driver: the one place that sleeps between attempts.

Every request kind is retried through one :class:`Retrier`: HEADs (stat),
listing pages and the whole-object GETs with :meth:`Retrier.run`, and the
part fetcher, whose attempts resume where the last one broke, with
:meth:`Retrier.failed` and :meth:`Retrier.succeeded` around its own loop.
What to do after a failure is decided by the pure policy
(``planning._retry.decide``): retry after a delay, or give up. The driver
sleeps that delay (``sleep`` is injected, so tests of backoff never sleep
for real), tells subscribers about the retry, and on giving up raises the
error with the attempts, the range and the source filled in. Every success
refunds the client's shared retry budget, every retry draws from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._config import RetryConfig
from .._errors import S3PullError
from .._events import Events
from ..planning import GiveUp, RetryBudget, decide

Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")


class Retrier:
    """Retries a client's requests under its policy and its shared budget.

    Args:
        config: the retry policy.
        budget: the client's shared retry tokens.
        events: where retries are told.
        sleep: what waits out a backoff (injected for tests).
    """

    def __init__(
        self,
        config: RetryConfig,
        budget: RetryBudget,
        events: Events,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self.budget = budget
        self.events = events
        self.sleep = sleep

    async def run(
        self, attempt: Callable[[], Awaitable[_T]], where: str, *, failed_before: int = 0
    ) -> tuple[_T, int]:
        """Await ``attempt()`` until it succeeds; return its result and the attempts made.

        ``where``: the redacted source, for events and the final error.
        ``failed_before``: failures of another request this one takes over
        from (a first GET's, for the HEAD after it): they count towards
        ``max_attempts`` and the attempts go on from them.

        Raises:
            S3PullError: the last failure, once the policy gives up.
        """
        failures = failed_before
        while True:
            try:
                result = await attempt()
            except S3PullError as error:
                failures += 1
                await self.failed(where, error, failures=failures, attempts=failures)
                continue
            self.succeeded()
            return result, failures + 1

    async def failed(
        self,
        where: str,
        error: S3PullError,
        *,
        failures: int,
        attempts: int,
        span: tuple[int, int] | None = None,
    ) -> None:
        """Sleep before the next attempt, or raise ``error`` if the policy gives up.

        Args:
            where: the redacted source.
            error: the failure.
            failures: the counted failures of this request, ``error`` included
                (the policy's ``max_attempts`` bounds them).
            attempts: the requests made for the whole download so far, for
                events and the error.
            span: the byte range the request was for, if any.
        """
        decision = decide(self.config, error, failures=failures, budget=self.budget)
        if isinstance(decision, GiveUp):
            error.attempts = attempts
            if error.range is None:
                error.range = span
            if error.source is None:
                error.source = where
            raise error
        self.events.retry(where, error, attempts, decision.delay)
        await self.sleep(decision.delay)

    def succeeded(self) -> None:
        """A request succeeded: refund the shared budget a little."""
        self.budget.refund()
