"""Prometheus metrics of a client's downloads, as one more subscriber.

``Client(metrics=True)`` (or ``TransferConfig(metrics=True)``) records into
``prometheus_client``'s default registry, ``Client(metrics=registry)`` into
another; ``s3pull cp ... --metrics-port 9108`` serves them on
``http://127.0.0.1:9108/metrics`` while it runs. Needs the ``s3pull[metrics]``
extra; nothing here is imported unless asked for.

The names follow Prometheus' conventions: base units (seconds, bytes),
``_total`` for counters, and no bucket, key or URL in a label (each would be
a new time series per object). What is recorded:

- ``s3pull_download_duration_seconds`` (histogram; ``size_class``,
  ``outcome``): first request to rename, or to the failure
- ``s3pull_downloaded_bytes_total`` (counter): bytes written, as they arrive
- ``s3pull_requests_total`` (counter; ``op``, ``status_class``): requests
  answered (``status_class`` ``error``: no answer came)
- ``s3pull_first_byte_seconds`` (histogram; ``op``): request sent to the
  answer's head
- ``s3pull_retries_total`` (counter; ``reason``): attempts failed and retried
- ``s3pull_failures_total`` (counter; ``error``): downloads failed for good
- ``s3pull_downloads_in_flight`` (gauge): started and not finished
- ``s3pull_memory_budget_bytes`` / ``s3pull_memory_budget_in_use_bytes``
  (gauges): the clients' memory budgets, and what in-flight buffers hold
- ``s3pull_temp_bytes`` (gauge): bytes in temp files not yet committed
- ``s3pull_breaker_open`` (gauge; ``scope``): breakers not closed, per
  ``object`` / ``endpoint``

``size_class`` is ``<1MiB``, ``1MiB-64MiB``, ``64MiB-1GiB`` or ``>1GiB``;
``outcome`` ``ok`` or ``error``; ``reason`` and ``error`` the error's kind
(``throttled``, ``server``, ``network``, ``timeout``, ``not_found``...).
The budget and breaker gauges are read at scrape time. Requests and
first-byte times are those of the client's own process: batches spread over
``processes`` report their objects' events here, not their requests.

Under Celery each worker child records into ``prometheus_client``'s
multiprocess files: see :func:`s3pull.celery.enable_metrics`.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ._errors import ConfigError, S3PullError
from ._events import Subscriber, Written
from ._results import DownloadResult

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Metrics", "MetricsServer", "error_kind", "serve", "size_class"]

MiB = 1024 * 1024
GiB = 1024 * MiB

#: prometheus_client's multiprocess mode: set (before the processes start)
#: to the directory where each process writes its metrics.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Downloads take from milliseconds (a small object) to an hour (a huge one).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: A first byte takes milliseconds near the store, seconds when it struggles.
FIRST_BYTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Budget(Protocol):
    @property
    def limit(self) -> int: ...
    @property
    def used(self) -> int: ...


class _Breakers(Protocol):
    def open_count(self, scope: str) -> int: ...


def size_class(size: int) -> str:
    """The ``size_class`` label of an object of ``size`` bytes.

    Example:
        >>> size_class(5 * MiB), size_class(2 * GiB)
        ('1MiB-64MiB', '>1GiB')
    """
    if size < MiB:
        return "<1MiB"
    if size < 64 * MiB:
        return "1MiB-64MiB"
    if size <= GiB:
        return "64MiB-1GiB"
    return ">1GiB"


def error_kind(error: BaseException) -> str:
    """The label of an error: its class name in snake case, without ``Error``.

    Example:
        >>> from s3pull._errors import NotFoundError, ThrottledError
        >>> error_kind(ThrottledError("503")), error_kind(NotFoundError("404"))
        ('throttled', 'not_found')
    """
    name = type(error).__name__.removesuffix("Error") or type(error).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if status else "error"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigError("metrics need prometheus_client: pip install 's3pull[metrics]'") from exc
    return prometheus_client


class Metrics(Subscriber):
    """Records a client's events as Prometheus metrics in ``registry``.

    One instance per registry (:meth:`for_registry`): its instruments can be
    registered only once, and every client that records there shares them.

    Args:
        registry: where the instruments are registered; None: the default.
        clock: seconds on a monotonic clock, for failed downloads' durations
            (injected by tests).

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> metrics = Metrics(registry)
        >>> metrics.on_queued("s3://b/k", 10); metrics.on_progress("s3://b/k", 4, 10)
        >>> registry.get_sample_value("s3pull_temp_bytes")
        4.0
    """

    _shared: ClassVar[weakref.WeakKeyDictionary[Any, Metrics]] = weakref.WeakKeyDictionary()
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        prometheus = _prometheus()
        self.registry = prometheus.REGISTRY if registry is None else registry
        self.clock = clock
        where = {"registry": self.registry}
        self.duration = prometheus.Histogram(
            "s3pull_download_duration_seconds",
            "Seconds from a download's first request to its rename, or to its failure.",
            ["size_class", "outcome"],
            buckets=DURATION_BUCKETS,
            **where,
        )
        self.bytes = prometheus.Counter(
            "s3pull_downloaded_bytes", "Bytes written to temp files, as they arrive.", **where
        )
        self.requests = prometheus.Counter(
            "s3pull_requests",
            "Requests to the store by operation and status class (error: no answer).",
            ["op", "status_class"],
            **where,
        )
        self.first_byte = prometheus.Histogram(
            "s3pull_first_byte_seconds",
            "Seconds from sending a request to its answer's head.",
            ["op"],
            buckets=FIRST_BYTE_BUCKETS,
            **where,
        )
        self.retries = prometheus.Counter(
            "s3pull_retries", "Failed attempts retried, by error kind.", ["reason"], **where
        )
        self.failures = prometheus.Counter(
            "s3pull_failures", "Downloads that failed for good, by error kind.", ["error"], **where
        )
        self.in_flight = prometheus.Gauge(
            "s3pull_downloads_in_flight",
            "Downloads started and not yet finished.",
            multiprocess_mode="livesum",
            **where,
        )
        self.temp_bytes = prometheus.Gauge(
            "s3pull_temp_bytes",
            "Bytes written to temp files and not yet committed.",
            multiprocess_mode="livesum",
            **where,
        )
        # Read at scrape time from every client that records here; not under
        # multiprocess mode, whose collector reads only the processes' files.
        self._budgets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._breakers: weakref.WeakSet[Any] = weakref.WeakSet()
        if not os.environ.get(MULTIPROC_ENV):
            self._scrape_time_gauges(prometheus, where)
        #: Per download in flight: (size, start time).
        self._downloads: dict[str, tuple[int, float]] = {}
        self._written = Written()

    def _scrape_time_gauges(self, prometheus: Any, where: dict[str, Any]) -> None:
        budget_limit = prometheus.Gauge(
            "s3pull_memory_budget_bytes", "The clients' memory budgets.", **where
        )
        budget_limit.set_function(lambda: sum(budget.limit for budget in list(self._budgets)))
        budget_used = prometheus.Gauge(
            "s3pull_memory_budget_in_use_bytes",
            "Bytes of the memory budgets held by in-flight buffers.",
            **where,
        )
        budget_used.set_function(lambda: sum(budget.used for budget in list(self._budgets)))
        breaker_open = prometheus.Gauge(
            "s3pull_breaker_open",
            "Circuit breakers not closed, per scope (object or endpoint).",
            ["scope"],
            **where,
        )
        for scope in ("object", "endpoint"):
            breaker_open.labels(scope=scope).set_function(self._open_breakers(scope))

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """The one instance that records into ``registry`` (None: the default)."""
        key = _prometheus().REGISTRY if registry is None else registry
        with cls._shared_lock:
            metrics = cls._shared.get(key)
            if metrics is None:
                metrics = cls._shared[key] = cls(key)
            return metrics

    def watch(self, budget: _Budget, breakers: _Breakers | None = None) -> None:
        """Report ``budget`` (a client's ``MemoryBudget``) and ``breakers`` in the gauges."""
        self._budgets.add(budget)
        if breakers is not None:
            self._breakers.add(breakers)

    def _open_breakers(self, scope: str) -> Callable[[], float]:
        return lambda: sum(breakers.open_count(scope) for breakers in list(self._breakers))

    # -- events -------------------------------------------------------------

    def on_queued(self, source: str, size: int) -> None:
        known = self._downloads.get(source)
        if known is None:  # a restart queues the object again: one download still
            self.in_flight.inc()
            self._downloads[source] = (size, self.clock())
        else:
            self._downloads[source] = (size, known[1])

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source not in self._downloads:
            self.on_queued(source, total)
        change = self._written.update(source, done)
        if change > 0:
            self.bytes.inc(change)
        # Negative when written bytes were discarded: they leave the temp file.
        self.temp_bytes.inc(change)

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        self.retries.labels(reason=error_kind(error)).inc()

    def on_done(self, result: DownloadResult) -> None:
        if self._downloads.pop(result.source, None) is not None:
            self.in_flight.dec()
        written = self._written.finish(result.source)
        self.temp_bytes.dec(written)
        if result.bytes > written:  # the last bytes may come without a progress event
            self.bytes.inc(result.bytes - written)
        self.duration.labels(size_class=size_class(result.bytes), outcome="ok").observe(
            result.seconds
        )

    def on_error(self, source: str, error: S3PullError) -> None:
        self.failures.labels(error=error_kind(error)).inc()
        self.temp_bytes.dec(self._written.finish(source))  # the temp file is removed
        known = self._downloads.pop(source, None)
        if known is None:  # failed before its size was known: no duration to tell
            return
        size, started = known
        self.in_flight.dec()
        self.duration.labels(size_class=size_class(size), outcome="error").observe(
            max(0.0, self.clock() - started)
        )

    def on_request(self, op: str, status: int, seconds: float) -> None:
        self.requests.labels(op=op, status_class=_status_class(status)).inc()
        if status:
            self.first_byte.labels(op=op).observe(seconds)


class MetricsServer:
    """``/metrics`` served from a daemon thread; :meth:`close` stops it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.address: tuple[str, int] = server.server_address[:2]

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> MetricsServer:
    """Serve ``registry`` (None: the default) on ``http://addr:port/metrics``.

    Raises:
        ConfigError: the port cannot be bound, or prometheus_client is missing.

    Example:
        >>> server = serve(0)  # doctest: +SKIP
        >>> server.address  # doctest: +SKIP
        ('127.0.0.1', 40713)
    """
    prometheus = _prometheus()
    try:
        server, thread = prometheus.start_http_server(
            port, addr=addr, registry=prometheus.REGISTRY if registry is None else registry
        )
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from exc
    return MetricsServer(server, thread)
