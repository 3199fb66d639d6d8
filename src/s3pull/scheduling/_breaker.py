"""Circuit breakers: one per failing object, one per endpoint.

Retries (``RetryConfig``) deal with a failure that goes away within seconds.
Two kinds of failure do not, and retrying them only adds load:

* **A broken object.** A key that always answers 500, a truncated upload
  that never passes its checksum, an expired presigned URL: every batch that
  lists it downloads it again, retries it again and fails again. After
  ``failures`` consecutive failed downloads (each already retried) the
  object's breaker *opens*: :meth:`Breakers.admit` says no, and the caller
  reports the object as skipped (``CircuitOpenError``) without a request.
  After ``cooldown`` seconds the breaker lets exactly one attempt through
  (*half-open*); its outcome decides: success forgets the object, failure
  opens the breaker for another cooldown. Only objects that have failed are
  remembered, least recently failed first out beyond ``max_tracked``, so a
  batch of millions of healthy objects costs nothing and a batch of millions
  of broken ones costs a bounded amount: about 450 bytes per remembered
  object with a 60-character key and a typical S3 error message (key,
  message, entry, LRU link), so ~4.5 MB at the default 10,000, outside the
  transfer memory budget.

* **An endpoint that is down.** When a bucket or an HTTP host fails, every
  object on it fails the same way, and 64 workers each retrying against it
  is a self-inflicted storm right when the store is trying to recover. After
  ``endpoint_failures`` consecutive transient failures (5xx, throttling,
  network, timeouts) across its objects, the endpoint opens: new downloads
  there wait in :meth:`Breakers.endpoint`. After ``endpoint_cooldown`` one
  of them goes ahead as the *probe* while the others keep waiting for its
  outcome: success releases them all. Errors that say nothing about the
  endpoint's health (404, 403, a checksum mismatch, a full disk) neither
  count nor reset the count; if the probe ends with one, the next waiter
  probes at once.

  A transient failure of the probe means the endpoint has been failing for a
  whole cooldown, on top of the retries that opened it: it is *down*. Waiting
  for the next probe would then cost every remaining object a cooldown of its
  own (a batch of 2000 against a dead host would take hours, one probe at a
  time), so the waiters fail at once with :class:`EndpointUnavailableError`,
  which names the endpoint and its last error, and so does every download
  that arrives while the endpoint stays down. A new probe still goes ahead
  once per cooldown (the first download to arrive after it), and its success
  closes the endpoint for everyone. The two cases the pause tells apart: an
  endpoint that blips for a second costs a batch one pause and no failures;
  one that is dead costs it the retries that open the breaker, one pause and
  one probe, then everything left fails in no time. The first pause is kept
  short (10 s by default) because it is the time a dead endpoint takes to be
  reported; while the endpoint is down, the only load on it is one probe per
  cooldown.

Only one waiter per open endpoint sleeps out the cooldown (with the injected
``sleep``, so tests never sleep for real); the others wait for a state
change. A probe that is cancelled, or ends with an exception that is not an
:class:`S3PullError`, hands its role to the next waiter instead of leaving the
endpoint half-open forever; a down endpoint stays down until a probe succeeds.

Several processes running one batch (``--processes``) share what they learn
about endpoints: each process reports its own endpoint changes (opened,
down, closed by a probe) to ``on_endpoint``, and takes the others' with
:meth:`Breakers.adopt`, so an endpoint that one worker found failing pauses
every worker, not only the one that counted the failures. Object breakers
stay with the process that downloads the object.

Both breakers count only failures that are the object's or the store's
fault. A full disk, an unsafe local path, bad credentials, a bad option or a
download skipped by a breaker say nothing about the object or the endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from .._config import BreakerConfig
from .._errors import (
    CircuitOpenError,
    ConfigError,
    CredentialsError,
    EndpointUnavailableError,
    LocalError,
    S3PullError,
    TransientError,
    UnsafePathError,
)
from ._breaker_store import BreakerStore

State = Literal["closed", "open", "half-open"]

CLOSED: State = "closed"
OPEN: State = "open"
HALF_OPEN: State = "half-open"

#: Errors that are neither the object's fault nor the store's: they never
#: count against an object's breaker.
_NOT_THE_OBJECTS_FAULT = (
    LocalError,
    UnsafePathError,
    CircuitOpenError,
    CredentialsError,
    ConfigError,
)


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What a breaker knows about one object (or endpoint).

    Attributes:
        state: ``"closed"`` (attempts go ahead), ``"open"`` (attempts are
            refused until ``retry_at``) or ``"half-open"`` (one probe attempt
            is in flight and decides).
        failures: consecutive counted failures.
        last_failure: ``str(error)`` of the last counted failure, on one line,
            or None.
        opened_at: clock time the breaker last opened, or None.
        retry_at: clock time from which one probe may go ahead (open only).

    Example:
        >>> BreakerState("closed", 0, None, None, None).state
        'closed'
    """

    state: State
    failures: int
    last_failure: str | None
    opened_at: float | None
    retry_at: float | None


_CLOSED_STATE = BreakerState(CLOSED, 0, None, None, None)


@dataclass(slots=True)
class _Entry:
    state: State = CLOSED
    failures: int = 0
    last_failure: str | None = None
    opened_at: float | None = None
    retry_at: float | None = None
    # Half-open objects only: when the probe is presumed lost (see admit()).
    probe_deadline: float = 0.0

    def snapshot(self) -> BreakerState:
        retry_at = self.retry_at if self.state == OPEN else None
        return BreakerState(self.state, self.failures, self.last_failure, self.opened_at, retry_at)

    def fail(self, error: S3PullError) -> None:
        self.failures += 1
        self.last_failure = " ".join(str(error).splitlines())

    def open(self, now: float, cooldown: float) -> None:
        self.state = OPEN
        self.opened_at = now
        self.retry_at = now + cooldown


@dataclass(slots=True)
class _Endpoint(_Entry):
    # Set, then replaced, on every state change: waiters wait on the event
    # they saw, so one set() wakes exactly the waiters of that state.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Whether a waiter is sleeping out the cooldown (the others wait on
    # ``changed`` rather than all sleeping and racing for the probe).
    timing: bool = False
    # A probe failed: downloads that would wait fail at once instead, until
    # a probe succeeds (which forgets the entry) or a reset.
    down: bool = False

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Breakers:
    """Per-object and per-endpoint circuit breakers for one client.

    Object keys are the objects' redacted source URLs; endpoints are an S3
    bucket (``"s3://bucket"``) or an HTTP origin (``"https://host:443"``).

    Args:
        config: thresholds and cooldowns.
        clock: seconds on a monotonic clock; injected by tests.
        sleep: waits the given seconds; injected by tests.

    Example:
        >>> from s3pull._config import BreakerConfig
        >>> from s3pull._errors import ServerError
        >>> now = 0.0
        >>> breakers = Breakers(BreakerConfig(failures=2, cooldown=60), clock=lambda: now)
        >>> key = "s3://bucket/broken.bin"
        >>> for _ in range(2):
        ...     breakers.failed(key, ServerError("500 InternalError", source=key))
        >>> breakers.admit(key), breakers.state(key).retry_at
        (False, 60.0)
        >>> now = 60.0
        >>> breakers.admit(key), breakers.admit(key)  # one probe after the cooldown
        (True, False)
        >>> breakers.succeeded(key)
        >>> breakers.state(key).state
        'closed'
    """

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        # Least recently failed first. Only keys with a counted failure are
        # here: a success deletes the key, so healthy objects cost nothing.
        self._objects: OrderedDict[str, _Entry] = OrderedDict()
        # Only endpoints with a failure or open are here, for the same reason.
        self._endpoints: dict[str, _Endpoint] = {}
        #: Where object breakers live instead of this process's memory (a
        #: ``RedisBreakerStore``: shared by a fleet); see ``_breaker_store``.
        self.store: BreakerStore | None = None
        #: Told ``(endpoint, "open" | "down" | "closed", state)`` whenever a
        #: download here changes an endpoint's state (not by :meth:`adopt`).
        self.on_endpoint: Callable[[str, str, BreakerState], None] | None = None

    def __repr__(self) -> str:
        return f"<Breakers objects={len(self._objects)} endpoints={len(self._endpoints)}>"

    def open_count(self, scope: str) -> int:
        """How many breakers of ``scope`` (``"object"`` or ``"endpoint"``) are
        not closed here (open, or half-open while a probe runs); a metrics
        gauge reads it at scrape time. A shared store's objects are not counted."""
        entries = self._objects if scope == "object" else self._endpoints
        return sum(1 for entry in entries.values() if entry.state != CLOSED)

    # -- per object ---------------------------------------------------------

    def admit(self, key: str) -> bool:
        """Whether an attempt to download ``key`` may go ahead now.

        True while the object's breaker is closed. While it is open, False
        until the cooldown is over; then True exactly once: that caller is the
        probe, and the breaker is half-open (False for everyone else) until it
        reports. Every True must be followed by exactly one of
        :meth:`succeeded`, :meth:`failed` or :meth:`abandoned`. A probe that
        never reports (its caller was cancelled and did not call
        :meth:`abandoned`) is presumed lost after another ``cooldown``, and
        the next caller probes instead.

        Example:
            >>> Breakers(BreakerConfig()).admit("s3://bucket/key")
            True
        """
        if self.store is not None:
            return self.store.admit(key)
        entry = self._objects.get(key)
        if entry is None or entry.state == CLOSED:
            return True
        now = self._clock()
        if entry.state == OPEN:
            assert entry.retry_at is not None
            if now < entry.retry_at:
                return False
        elif now < entry.probe_deadline:  # half-open, probe in flight
            return False
        entry.state = HALF_OPEN
        entry.probe_deadline = now + self.config.cooldown
        return True

    def succeeded(self, key: str) -> None:
        """Record that ``key`` downloaded: its breaker closes and forgets it."""
        if self.store is not None:
            self.store.succeeded(key)
        self._objects.pop(key, None)

    def failed(self, key: str, error: S3PullError) -> None:
        """Record that downloading ``key`` failed with ``error``.

        A local failure (:class:`LocalError`, :class:`UnsafePathError`), bad
        credentials or options, or a skip (:class:`CircuitOpenError`) is not
        the object's fault and is not counted; if it ended a probe, the next
        :meth:`admit` probes again at once. Otherwise the failure counts: the
        ``failures``-th consecutive one opens the breaker, and a failed probe
        opens it again for another ``cooldown``.

        Example:
            >>> from s3pull._errors import DiskFullError
            >>> breakers = Breakers(BreakerConfig(failures=1))
            >>> breakers.failed("s3://b/k", DiskFullError("no space left"))
            >>> breakers.state("s3://b/k").failures
            0
        """
        if self.store is not None:
            if isinstance(error, _NOT_THE_OBJECTS_FAULT):
                self.store.abandoned(key)
            else:
                self.store.failed(key, " ".join(str(error).splitlines()))
            return
        entry = self._objects.get(key)
        if isinstance(error, _NOT_THE_OBJECTS_FAULT):
            if entry is not None and entry.state == HALF_OPEN:
                self._hand_over(entry)
            return
        if entry is None:
            entry = self._objects[key] = _Entry()
            # Evict only when adding: the cap bounds memory whatever fails.
            if len(self._objects) > self.config.max_tracked:
                self._objects.popitem(last=False)
        else:
            self._objects.move_to_end(key)
        entry.fail(error)
        if entry.state == HALF_OPEN or (
            entry.state == CLOSED and entry.failures >= self.config.failures
        ):
            entry.open(self._clock(), self.config.cooldown)
        # Already open: a late failure of an attempt admitted before it
        # opened. It counts, but does not push the next probe back.

    def abandoned(self, key: str) -> None:
        """Record that an admitted attempt ended without a verdict (cancelled).

        If it was the probe, the next :meth:`admit` probes at once; otherwise
        nothing changes.
        """
        if self.store is not None:
            self.store.abandoned(key)
            return
        entry = self._objects.get(key)
        if entry is not None and entry.state == HALF_OPEN:
            self._hand_over(entry)

    def state(self, key: str) -> BreakerState:
        """What the breaker knows about ``key`` (closed with 0 failures if nothing).

        Example:
            >>> Breakers(BreakerConfig()).state("s3://bucket/key")  # doctest: +NORMALIZE_WHITESPACE
            BreakerState(state='closed', failures=0,
                         last_failure=None, opened_at=None, retry_at=None)
        """
        if self.store is not None:
            state, failures, last, wait = self.store.state(key)
            now = self._clock()
            retry_at = now + wait if wait is not None else None
            return BreakerState(state, failures, last, None, retry_at)  # type: ignore[arg-type]
        entry = self._objects.get(key)
        return _CLOSED_STATE if entry is None else entry.snapshot()

    def reset(self, key: str | None = None) -> None:
        """Forget ``key`` (an object or an endpoint), or everything.

        Downloads waiting on a reset endpoint go ahead at once.
        """
        if self.store is not None:
            self.store.reset(key)
        if key is None:
            self._objects.clear()
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        else:
            self._objects.pop(key, None)
            endpoint = self._endpoints.pop(key, None)
            endpoints = [] if endpoint is None else [endpoint]
        for endpoint in endpoints:
            endpoint.notify()

    def _hand_over(self, entry: _Entry) -> None:
        # The probe gave no verdict: open with the cooldown already served,
        # so the next caller probes without waiting again.
        entry.state = OPEN
        entry.retry_at = self._clock()

    # -- per endpoint -------------------------------------------------------

    def endpoint(self, endpoint: str) -> EndpointGuard:
        """Wrap one download from ``endpoint`` (``async with``): wait while it
        is open, record the outcome.

        Enters at once while the endpoint is closed. While it is open, waits
        out the cooldown, then lets exactly one caller in as the probe while
        the others wait for its outcome. While it is down (a probe failed),
        raises :class:`EndpointUnavailableError` at once, except for one
        caller per cooldown, who probes. On exit: a normal exit is a success
        (resets the count; a probe closes the endpoint and releases every
        waiter); a :class:`TransientError` counts (a probe marks the endpoint
        down for another cooldown, and its waiters raise
        :class:`EndpointUnavailableError`); any other :class:`S3PullError`
        neither counts nor resets. A probe that ends without a verdict
        (another :class:`S3PullError`, another exception, cancellation) lets
        the next waiter probe at once. Exceptions always propagate.

        Example:
            >>> breakers = Breakers(BreakerConfig())
            >>> async def download():
            ...     async with breakers.endpoint("s3://bucket"):
            ...         pass  # the GETs of one object
            >>> asyncio.run(download())
            >>> breakers.endpoint_state("s3://bucket").state
            'closed'
        """
        return EndpointGuard(self, endpoint)

    async def _enter_endpoint(self, endpoint: str) -> _Endpoint | None:
        """Wait until ``endpoint`` may be used; return its entry if we are the probe."""
        if self.store is not None:
            self._adopt_shared(endpoint)
        return await self._enter(endpoint)

    def _leave_endpoint(
        self, endpoint: str, probe: _Endpoint | None, error: BaseException | None
    ) -> None:
        """Record how a download from ``endpoint`` ended: ``error``, or None for a success."""
        if error is None:
            self._record(endpoint, None, probe)
        elif isinstance(error, S3PullError):
            self._record(endpoint, error, probe)
        elif probe is not None and self._endpoints.get(endpoint) is probe:
            self._hand_over(probe)
            probe.notify()

    def endpoint_state(self, endpoint: str) -> BreakerState:
        """What the breaker knows about ``endpoint`` (closed with 0 failures if nothing).

        ``failures`` counts consecutive transient failures across the
        endpoint's objects.
        """
        entry = self._endpoints.get(endpoint)
        return _CLOSED_STATE if entry is None else entry.snapshot()

    async def _enter(self, name: str) -> _Endpoint | None:
        """Wait until ``name`` may be used; return its entry if we are the probe."""
        while True:
            entry = self._endpoints.get(name)
            if entry is None or entry.state == CLOSED:
                return None
            if entry.down:
                assert entry.retry_at is not None
                if entry.state == OPEN and self._clock() >= entry.retry_at:
                    entry.state = HALF_OPEN
                    return entry
                # Open with the cooldown not over, or a probe in flight.
                raise self._unavailable(name, entry)
            if entry.state == OPEN and not entry.timing:
                assert entry.retry_at is not None
                delay = entry.retry_at - self._clock()
                if delay <= 0:
                    entry.state = HALF_OPEN
                    return entry
                entry.timing = True
                try:
                    await self._sleep_unless(entry.changed, delay)
                except BaseException:
                    # Cancelled while timing: wake the others so that one of
                    # them takes the timing over.
                    entry.timing = False
                    entry.notify()
                    raise
                entry.timing = False
            else:
                # Half-open, or someone else is timing the cooldown.
                await entry.changed.wait()

    def _unavailable(self, name: str, entry: _Endpoint) -> EndpointUnavailableError:
        if entry.state == HALF_OPEN:
            when = "a new probe is under way"
        else:
            assert entry.retry_at is not None
            when = f"the next probe in {max(0.0, entry.retry_at - self._clock()):.0f} s"
        return EndpointUnavailableError(
            f"not attempted: endpoint {name} is down: {entry.failures} transient failures "
            f"in a row, the probe after a pause included ({when}); the last: "
            f"{entry.last_failure}"
        )

    async def _sleep_unless(self, changed: asyncio.Event, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the endpoint changes (a reset)."""
        sleeping = asyncio.ensure_future(self._sleep(delay))
        waiting = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait((sleeping, waiting), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            waiting.cancel()
            await asyncio.gather(sleeping, waiting, return_exceptions=True)

    def adopt(self, endpoint: str, change: str, state: BreakerState) -> None:
        """Take an endpoint change another process's breakers reported.

        ``"open"`` pauses new downloads here too (for a cooldown from now,
        unless the endpoint is already open); ``"down"`` makes them fail at
        once, as after a failed probe here; ``"closed"`` (a probe succeeded
        there) releases every download waiting here.
        """
        entry = self._endpoints.get(endpoint)
        if change == CLOSED:
            if entry is not None and entry.state != HALF_OPEN:
                del self._endpoints[endpoint]
                entry.notify()
            return
        if entry is None:
            entry = self._endpoints[endpoint] = _Endpoint()
        entry.failures = max(entry.failures, state.failures)
        entry.last_failure = state.last_failure or entry.last_failure
        if entry.state == CLOSED or (change == "down" and entry.state == OPEN):
            entry.open(self._clock(), self.config.endpoint_cooldown)
        entry.down = entry.down or change == "down"
        entry.notify()

    def _adopt_shared(self, name: str) -> None:
        """Take what another process of the fleet told the store about ``name``."""
        assert self.store is not None
        shared = self.store.endpoint(name)
        if shared is None:
            return
        change, failures, last_failure = shared
        entry = self._endpoints.get(name)
        if entry is None or entry.state == CLOSED or (change == "down" and not entry.down):
            self.adopt(name, change, BreakerState(change, failures, last_failure, None, None))  # type: ignore[arg-type]

    def _tell(self, name: str, change: str, entry: _Endpoint) -> None:
        if self.store is not None:
            self.store.endpoint_changed(name, change, entry.failures, entry.last_failure)
        if self.on_endpoint is not None:
            self.on_endpoint(name, change, entry.snapshot())

    def _record(self, name: str, error: S3PullError | None, probe: _Endpoint | None) -> None:
        entry = self._endpoints.get(name)
        if probe is not None and entry is probe:
            if error is None:
                del self._endpoints[name]  # closed, count reset
                self._tell(name, CLOSED, entry)
            elif isinstance(error, TransientError):
                entry.fail(error)
                entry.open(self._clock(), self.config.endpoint_cooldown)
                entry.down = True  # its waiters fail now; see the module docstring
                self._tell(name, "down", entry)
            else:
                self._hand_over(entry)
            entry.notify()
            return
        # Not the probe (or the endpoint was reset while it ran).
        if error is None:
            if entry is not None and entry.state == CLOSED:
                del self._endpoints[name]  # any success resets the count
            # Open or half-open: a download that started before the endpoint
            # opened proves little; only the probe decides.
            return
        if not isinstance(error, TransientError):
            return  # 404, 403, checksum...: says nothing about the endpoint
        if entry is None:
            entry = self._endpoints[name] = _Endpoint()
        # While open, a failure of a download that started before it opened
        # still shows in the count but does not push the probe back.
        entry.fail(error)
        if entry.state == CLOSED and entry.failures >= self.config.endpoint_failures:
            entry.open(self._clock(), self.config.endpoint_cooldown)
            entry.notify()
            self._tell(name, OPEN, entry)


class EndpointGuard:
    """One download's pass through its endpoint's breaker (:meth:`Breakers.endpoint`).

    A plain class rather than an ``@asynccontextmanager``: every object of a
    batch enters one, and the generator machinery cost more than the
    breaker's own bookkeeping.
    """

    __slots__ = ("_breakers", "_endpoint", "_probe")

    def __init__(self, breakers: Breakers, endpoint: str) -> None:
        self._breakers = breakers
        self._endpoint = endpoint
        self._probe: _Endpoint | None = None

    async def __aenter__(self) -> None:
        self._probe = await self._breakers._enter_endpoint(self._endpoint)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        # Never suppresses: the exception, if any, propagates.
        self._breakers._leave_endpoint(self._endpoint, self._probe, error)
