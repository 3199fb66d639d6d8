"""The retry driver (``scheduling._retrying``): it sleeps what the pure policy decides.

``sleep`` is injected: no test here waits for real.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from s3pull import AccessDeniedError, RetryConfig, S3PullError, ServerError, Subscriber
from s3pull._events import Events
from s3pull.planning._retry import RETRY_COST, SUCCESS_REFUND, RetryBudget
from s3pull.scheduling._retrying import Retrier

CONFIG = RetryConfig(max_attempts=3, backoff_base=1.0, backoff_cap=8.0)


class Retries(Subscriber):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, float]] = []

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        self.seen.append((source, type(error).__name__, attempt, delay))


def make(budget: int = 100) -> tuple[Retrier, list[float], Retries, RetryBudget]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    retries = Retries()
    tokens = RetryBudget(budget)
    return Retrier(CONFIG, tokens, Events([retries]), sleep=sleep), slept, retries, tokens


def failing(errors: list[S3PullError], result: str = "ok") -> Callable[[], Awaitable[str]]:
    async def attempt() -> str:
        if errors:
            raise errors.pop(0)
        return result

    return attempt


async def test_run_retries_transient_failures_until_one_succeeds() -> None:
    retrier, slept, retries, tokens = make()
    attempt = failing([ServerError("500"), ServerError("503")])
    assert await retrier.run(attempt, "s3://b/k") == ("ok", 3)
    assert len(slept) == 2 and all(0 <= delay <= 8.0 for delay in slept)
    assert [(s, kind, n) for s, kind, n, _ in retries.seen] == [
        ("s3://b/k", "ServerError", 1),
        ("s3://b/k", "ServerError", 2),
    ]
    assert tokens.tokens == 100 - 2 * RETRY_COST + SUCCESS_REFUND


async def test_run_gives_up_after_max_attempts_and_says_where() -> None:
    retrier, slept, _, _ = make()
    with pytest.raises(ServerError) as raised:
        await retrier.run(failing([ServerError(str(n)) for n in range(5)]), "s3://b/k")
    assert raised.value.attempts == 3 and raised.value.source == "s3://b/k"
    assert len(slept) == 2


async def test_a_failure_no_retry_can_fix_is_raised_at_once() -> None:
    retrier, slept, retries, _ = make()
    with pytest.raises(AccessDeniedError):
        await retrier.run(failing([AccessDeniedError("403")]), "s3://b/k")
    assert slept == [] and retries.seen == []


async def test_failed_fills_in_the_range_but_keeps_one_already_there() -> None:
    retrier, _, _, _ = make()
    error = AccessDeniedError("403")
    with pytest.raises(AccessDeniedError):
        await retrier.failed("s3://b/k", error, failures=1, attempts=7, span=(10, 19))
    assert (error.attempts, error.range) == (7, (10, 19))
    error = AccessDeniedError("403", range=(0, 9))
    with pytest.raises(AccessDeniedError):
        await retrier.failed("s3://b/k", error, failures=1, attempts=1, span=(10, 19))
    assert error.range == (0, 9)


async def test_an_empty_budget_stops_retries() -> None:
    retrier, slept, _, _ = make(budget=RETRY_COST - 1)
    with pytest.raises(ServerError):
        await retrier.run(failing([ServerError("500")]), "s3://b/k")
    assert slept == []
