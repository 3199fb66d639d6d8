"""Where object breakers keep their state: in memory (default) or in Redis.

A client's :class:`~s3pull.scheduling._breaker.Breakers` keep each failing
object's breaker in memory: enough for one process. A fleet of Celery
workers downloads the same objects from many processes, and a breaker one
worker opened must hold the others, or every worker pays the failures
before it learns. ``Breakers.store`` moves the object breakers into a
:class:`BreakerStore`; :class:`RedisBreakerStore` is the one for a fleet.

The Redis layout (``PREFIX`` = ``s3pull:breaker:``), every key expiring:

- ``PREFIX fails:<object>``: consecutive counted failures (``INCR``), and
  ``PREFIX last:<object>``: the last one's message; both expire after
  ``FORGET_SECONDS`` without a failure.
- ``PREFIX open:<object>``: present while the breaker is open; it expires
  after the cooldown (``PX``): the expiry *is* the cooldown, on Redis's
  clock, so workers' clocks never need to agree.
- ``PREFIX endpoint:<endpoint>``: an endpoint that opened or went down in
  some process (JSON: change, failures, last error), for ``endpoint_cooldown``
  (a failed probe renews it; a successful one deletes it). Every other
  process adopts it before its next download there (``Breakers.adopt``): a
  dead bucket pauses the fleet, not only the worker that counted its failures.
- ``PREFIX probe:<object>``: the half-open probe. Once ``open`` has expired
  and the count is still at the threshold, an attempt goes ahead only if
  its ``SET NX PX cooldown`` creates this key: exactly one probe fleet-wide,
  presumed lost after a cooldown. Its success deletes all three; its failure
  opens the breaker again.

Cost: one round trip per ``admit`` and per outcome (pipelined), ~0.1 ms on
a local network: small next to a download, and only when a store is set.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .._config import BreakerConfig

PREFIX = "s3pull:breaker:"
#: What one key (an object or an endpoint) has in Redis.
_KINDS = ("fails:", "last:", "open:", "probe:", "endpoint:")
#: A failure count is forgotten after this long without another failure.
FORGET_SECONDS = 24 * 3600


class BreakerStore(Protocol):
    """The object-breaker operations of ``Breakers``, kept elsewhere."""

    def admit(self, key: str) -> bool: ...

    def failed(self, key: str, message: str) -> None: ...

    def succeeded(self, key: str) -> None: ...

    def abandoned(self, key: str) -> None: ...

    def state(self, key: str) -> tuple[str, int, str | None, float | None]:
        """``(state, failures, last failure, seconds until a probe may go)``."""
        ...

    def reset(self, key: str | None = None) -> None: ...

    def endpoint_changed(
        self, endpoint: str, change: str, failures: int, last_failure: str | None
    ) -> None:
        """An endpoint opened, went down or closed here (``Breakers.on_endpoint``)."""
        ...

    def endpoint(self, endpoint: str) -> tuple[str, int, str | None] | None:
        """The last change another process reported for ``endpoint``, while it lasts."""
        ...


class RedisBreakerStore:
    """Object breakers in Redis, shared by every process that uses the same server.

    Args:
        redis: a ``redis.Redis`` client.
        config: thresholds and cooldowns (``failures``, ``cooldown``).

    Example:
        >>> import redis  # doctest: +SKIP
        >>> store = RedisBreakerStore(redis.Redis.from_url(url), BreakerConfig())  # doctest: +SKIP
        >>> client.breakers.store = store  # doctest: +SKIP
    """

    def __init__(self, redis: Any, config: BreakerConfig) -> None:
        self.redis = redis
        self.config = config

    def _cooldown_ms(self) -> int:
        return max(int(self.config.cooldown * 1000), 1)

    def admit(self, key: str) -> bool:
        with self.redis.pipeline() as pipe:
            pipe.exists(PREFIX + "open:" + key)
            pipe.get(PREFIX + "fails:" + key)
            is_open, fails = pipe.execute()
        if is_open:
            return False
        if fails is None or int(fails) < self.config.failures:
            return True
        # Open, cooldown over: one probe, whoever creates the key first.
        probe = self.redis.set(PREFIX + "probe:" + key, b"1", nx=True, px=self._cooldown_ms())
        return bool(probe)

    def failed(self, key: str, message: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.incr(PREFIX + "fails:" + key)
            pipe.expire(PREFIX + "fails:" + key, FORGET_SECONDS)
            pipe.set(PREFIX + "last:" + key, message, ex=FORGET_SECONDS)
            fails = pipe.execute()[0]
        if int(fails) >= self.config.failures:
            with self.redis.pipeline() as pipe:
                pipe.set(PREFIX + "open:" + key, message, px=self._cooldown_ms())
                pipe.delete(PREFIX + "probe:" + key)
                pipe.execute()

    def succeeded(self, key: str) -> None:
        self.redis.delete(*(PREFIX + kind + key for kind in _KINDS))

    def abandoned(self, key: str) -> None:
        self.redis.delete(PREFIX + "probe:" + key)  # the next attempt probes at once

    def state(self, key: str) -> tuple[str, int, str | None, float | None]:
        shared = self.endpoint(key)
        if shared is not None:
            change, failures, last = shared
            ttl = self.redis.pttl(PREFIX + "endpoint:" + key)
            return change, failures, last, max(ttl, 0) / 1000
        with self.redis.pipeline() as pipe:
            pipe.pttl(PREFIX + "open:" + key)
            pipe.get(PREFIX + "fails:" + key)
            pipe.get(PREFIX + "last:" + key)
            pipe.exists(PREFIX + "probe:" + key)
            ttl, fails, last, probing = pipe.execute()
        failures = int(fails or 0)
        message = last.decode() if last is not None else None
        if ttl is not None and ttl >= 0:
            return "open", failures, message, ttl / 1000
        if failures >= self.config.failures:
            return ("half-open" if probing else "open"), failures, message, 0.0
        return "closed", failures, message, None

    def reset(self, key: str | None = None) -> None:
        if key is not None:
            self.succeeded(key)
            return
        names = list(self.redis.scan_iter(match=PREFIX + "*", count=1000))
        if names:
            self.redis.delete(*names)

    def endpoint_changed(
        self, endpoint: str, change: str, failures: int, last_failure: str | None
    ) -> None:
        key = PREFIX + "endpoint:" + endpoint
        if change == "closed":
            self.redis.delete(key)
            return
        state = json.dumps([change, failures, last_failure])
        self.redis.set(key, state, px=max(int(self.config.endpoint_cooldown * 1000), 1))

    def endpoint(self, endpoint: str) -> tuple[str, int, str | None] | None:
        state = self.redis.get(PREFIX + "endpoint:" + endpoint)
        if state is None:
            return None
        change, failures, last_failure = json.loads(state)
        return change, failures, last_failure

    def tracked(self) -> list[str]:
        """Every object with a counted failure and every endpoint open or
        down, sorted."""
        found: set[str] = set()
        for kind in ("fails:", "endpoint:"):
            start = len(PREFIX + kind)
            names = self.redis.scan_iter(match=PREFIX + kind + "*", count=1000)
            found.update(name.decode()[start:] for name in names)
        return sorted(found)
