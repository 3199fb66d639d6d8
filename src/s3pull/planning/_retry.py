"""Retry decisions: pure functions of the failure, the attempt count and a random draw.

The driver (``scheduling/_retrying.py``) asks :func:`decide` what to do after
a failure and does the sleeping itself, so every backoff path is tested here
without a clock or a socket.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from .._config import RetryConfig
from .._errors import S3PullError, TimeoutError, TransientError

#: Tokens a retry costs from the shared budget, and what a success refunds
#: (the AWS SDKs' "standard" retry mode uses the same numbers).
RETRY_COST = 5
TIMEOUT_RETRY_COST = 10
SUCCESS_REFUND = 1


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop and raise the error; ``reason`` says why for logs."""

    reason: str


def backoff_delay(config: RetryConfig, failures: int, draw: float) -> float:
    """Full-jitter backoff before retry number ``failures`` (1-based).

    ``draw`` is a uniform random number in [0, 1), injected for tests.

    Example:
        >>> backoff_delay(RetryConfig(backoff_base=1, backoff_cap=8), failures=3, draw=0.5)
        2.0
    """
    ceiling = min(config.backoff_cap, config.backoff_base * 2.0 ** min(failures - 1, 62))
    return float(ceiling * draw)


def decide(
    config: RetryConfig,
    error: BaseException,
    *,
    failures: int,
    budget: RetryBudget | None = None,
    draw: float | None = None,
) -> Retry | GiveUp:
    """What to do after ``error``, the ``failures``-th counted failure of a request.

    Args:
        config: the retry policy.
        error: the failure, already translated to an s3pull error.
        failures: counted failures so far, this one included.
        budget: the client's shared retry budget; a retry withdraws from it.
        draw: a uniform number in [0, 1) for the jitter (default: random).

    Returns:
        :class:`Retry` with the delay, or :class:`GiveUp` with the reason.

    Example:
        >>> from s3pull import ServerError
        >>> decide(RetryConfig(), ServerError("500"), failures=1, draw=0.0)
        Retry(delay=0.0)
    """
    if not isinstance(error, TransientError):
        kind = type(error).__name__ if isinstance(error, S3PullError) else "unexpected error"
        return GiveUp(f"{kind} is not retryable")
    if failures >= config.max_attempts:
        return GiveUp(f"{failures} attempts failed")
    cost = TIMEOUT_RETRY_COST if isinstance(error, TimeoutError) else RETRY_COST
    if budget is not None and not budget.withdraw(cost):
        return GiveUp("the client's retry budget is exhausted")
    delay = backoff_delay(config, failures, random.random() if draw is None else draw)
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, config.backoff_cap))
    return Retry(delay)


class RetryBudget:
    """A token bucket shared by every request of a client.

    Retries withdraw tokens and successes refund them, so when everything is
    failing (an outage, a throttled bucket) retries stop multiplying the load
    while isolated failures are still retried. Thread-safe: the sync facade
    and Celery tasks may share a client.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tokens = capacity
        self._lock = threading.Lock()

    @property
    def tokens(self) -> int:
        return self._tokens

    def withdraw(self, cost: int) -> bool:
        with self._lock:
            if self._tokens < cost:
                return False
            self._tokens -= cost
            return True

    def refund(self, amount: int = SUCCESS_REFUND) -> None:
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + amount)
