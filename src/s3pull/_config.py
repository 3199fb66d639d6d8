"""Configuration: frozen, keyword-only, validated at construction."""

from __future__ import annotations

import base64
import binascii
import math
import os
from dataclasses import dataclass, field

from ._errors import ConfigError
from ._units import parse_rate, parse_size

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: The most bytes one socket read can hand us (asyncio's selector transport
#: reads at most this much per ``recv``), on top of what a stream buffers.
SOCKET_READ_SIZE = 256 * KiB
#: S3 allows at most this many parts; we never plan more ranges than this.
MAX_PARTS = 10_000
#: What SSE-C's AES256 wants: a 256-bit key.
SSE_C_KEY_BYTES = 32
#: The environment variable the CLI takes an SSE-C key from, base64-encoded.
SSE_C_KEY_ENV = "S3PULL_SSE_C_KEY"
#: The password of encrypted PDFs when none is given: the parser process reads
#: it, so the CLI, the library and Celery workers all take it from there, and
#: it need be neither in a process list nor in a broker's task message.
PDF_PASSWORD_ENV = "S3PULL_PDF_PASSWORD"
REQUEST_PAYERS = ("requester",)


def _whole(value: object) -> bool:
    """An int that is not a bool (``True`` is an int to Python, not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_number(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or math.isnan(value)
        or value <= 0
        or math.isinf(value)
    ):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """How long each phase of a request may take, in seconds.

    ``Timeouts(30, connect=5)`` sets every phase to 30 s except connecting.
    A stall is a body that delivers less than ``stall_min_rate`` bytes/s over
    any ``stall_window`` seconds (a sliding window, so fast bytes at the start
    do not excuse a drip after them): a server dripping one byte every few
    seconds never trips a plain read timeout, but it trips this. A body that
    stops outright is a stall too, so with a floor set no read waits longer
    than ``stall_window``. Only time spent waiting for the network counts: a
    busy event loop or disk never makes a fast server look stalled.

    Attributes:
        default: used for every phase not set explicitly (30 s).
        connect: TCP + TLS connect (default: ``default``).
        first_byte: from sending the request to the response headers (default: ``default``).
        read: the longest silence between two body reads (default: ``default``).
        stall_window: the window over which body throughput is measured (30 s).
        stall_min_rate: the lowest acceptable body throughput in bytes/s over
            ``stall_window`` (1 KiB/s).
        total: a deadline for a whole download, retries included (None: none).
    """

    default: float = 30.0
    connect: float | None = None
    first_byte: float | None = None
    read: float | None = None
    stall_window: float = 30.0
    stall_min_rate: float = 1024.0
    total: float | None = None

    def __init__(
        self,
        default: float = 30.0,
        *,
        connect: float | None = None,
        first_byte: float | None = None,
        read: float | None = None,
        stall_window: float = 30.0,
        stall_min_rate: float = 1024.0,
        total: float | None = None,
    ) -> None:
        # A hand-written __init__ so the default can be positional, as in
        # httpx.Timeout(30, connect=5); frozen fields are set via object.__setattr__.
        for name, value in (
            ("default", default),
            ("connect", connect),
            ("first_byte", first_byte),
            ("read", read),
            ("stall_window", stall_window),
            ("total", total),
        ):
            _positive_number(f"timeout {name}", value)
            object.__setattr__(self, name, value)
        if (
            not isinstance(stall_min_rate, int | float)
            or math.isnan(stall_min_rate)
            or stall_min_rate < 0
        ):
            raise ConfigError(f"stall_min_rate must be >= 0 bytes/s, got {stall_min_rate!r}")
        object.__setattr__(self, "stall_min_rate", stall_min_rate)

    @property
    def connect_s(self) -> float:
        return self.connect if self.connect is not None else self.default

    @property
    def first_byte_s(self) -> float:
        return self.first_byte if self.first_byte is not None else self.default

    @property
    def read_s(self) -> float:
        return self.read if self.read is not None else self.default

    @property
    def silence_s(self) -> float:
        """The longest wait for the next body bytes: the read timeout, or the
        stall window when a stall floor is set and it is shorter."""
        if self.stall_min_rate > 0:
            return min(self.read_s, self.stall_window)
        return self.read_s


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    """When and how fast to retry transient failures.

    The delay before retry *n* (1-based) is drawn uniformly from
    ``[0, min(backoff_cap, backoff_base * 2**(n-1))]`` ("full jitter"), but
    never shorter than a ``Retry-After`` the server sent (itself capped at
    ``backoff_cap``). A failed attempt that still delivered at least
    ``progress_reset`` bytes does not count towards ``max_attempts``: a long
    download over a flaky link keeps going as long as it makes progress.

    Attributes:
        max_attempts: attempts per request, the first included (5).
        backoff_base: first backoff ceiling in seconds (0.1).
        backoff_cap: the largest backoff in seconds (20).
        retry_budget: retry tokens shared by a whole client; each retry costs
            5 (10 after a timeout) and each success refunds 1, so a storm of
            failures across many objects cannot multiply the load (500).
        progress_reset: bytes of progress that make a failure "not count" (1 MiB).
    """

    max_attempts: int = 5
    backoff_base: float = 0.1
    backoff_cap: float = 20.0
    retry_budget: int = 500
    progress_reset: int = 1 * MiB

    def __post_init__(self) -> None:
        if not _whole(self.max_attempts) or self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        _positive_number("backoff_base", self.backoff_base, allow_none=False)
        _positive_number("backoff_cap", self.backoff_cap, allow_none=False)
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(
                f"backoff_cap ({self.backoff_cap}) must not be below backoff_base "
                f"({self.backoff_base})"
            )
        if not _whole(self.retry_budget) or self.retry_budget < 0:
            raise ConfigError(f"retry_budget must be >= 0, got {self.retry_budget!r}")


@dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """Circuit breakers: stop hammering what keeps failing.

    Per object: after ``failures`` consecutive failed downloads of one object
    (each one already retried by :class:`RetryConfig`), its breaker opens and
    the object is skipped, reported as ``CircuitOpenError``, for ``cooldown``
    seconds; then one attempt (half-open) decides: success closes it, failure
    opens it again. Per endpoint (an S3 bucket, or an HTTP host): after
    ``endpoint_failures`` consecutive transient failures (5xx, throttling,
    network, timeouts) across its objects, new downloads there pause for
    ``endpoint_cooldown`` seconds, then one probe download decides for all:
    if it fails too, the endpoint is down and the paused downloads (and every
    later one, but one probe per cooldown) fail at once as
    ``EndpointUnavailableError`` instead of each waiting out a cooldown.

    Attributes:
        failures: consecutive failures that open an object's breaker (3).
        cooldown: seconds an object's breaker stays open (300).
        endpoint_failures: consecutive transient failures that pause an endpoint (10).
        endpoint_cooldown: seconds an endpoint pauses before a probe, and between
            probes while it is down; also how long a batch against a dead
            endpoint waits before it reports it (10).
        max_tracked: objects whose failures are remembered (about 450 bytes
            each); the least recently failed are forgotten beyond this, so
            memory stays bounded (10,000).
    """

    failures: int = 3
    cooldown: float = 300.0
    endpoint_failures: int = 10
    endpoint_cooldown: float = 10.0
    max_tracked: int = 10_000

    def __post_init__(self) -> None:
        for name in ("failures", "endpoint_failures", "max_tracked"):
            value = getattr(self, name)
            if not _whole(value) or value < 1:
                raise ConfigError(f"breaker {name} must be >= 1, got {value!r}")
        _positive_number("breaker cooldown", self.cooldown, allow_none=False)
        _positive_number("breaker endpoint_cooldown", self.endpoint_cooldown, allow_none=False)


@dataclass(frozen=True, kw_only=True)
class TransferConfig:
    """How one client downloads: part size, concurrency and the memory budget.

    Memory formula. Bytes go from the socket to the file at their offset, so
    an in-flight ranged GET holds only its read buffer, never a whole part:
    one read on the event loop (small objects, ordered streams) holds at
    most ``read_buffer`` before it pauses the socket, plus one socket read
    (256 KiB); a body read on a worker thread (every GET into a file) reads
    into one buffer of ``stream_cost`` bytes, because fewer, larger reads
    cost less CPU per byte. Every GET is charged::

        stream_cost  = 2 * read_buffer + 256 KiB          (768 KiB by default)
        peak buffers = active_streams * stream_cost + ordered consumers' windows
                     <= memory_limit

    except the whole GET of an object known to be small (up to 1 MiB, read
    on the loop), whose socket pauses once its size (at most
    ``read_buffer``) plus 16 KiB for the head waits unread: it is charged
    that plus one socket read (``Transport.whole_get_cost``: 288 KiB for
    16 KiB). The client admits a new GET only when the budget has its
    charge free, so concurrency adapts to the budget: the default 64 MiB
    admits up to 85 streams, or 227 GETs of 16 KiB objects; 16 MiB admits
    21 streams. The process's peak RSS is the
    interpreter's baseline (~30-40 MB with s3pull's imports) plus at
    most ``memory_limit`` plus allocator slack, whatever the object size.
    A batch spread over ``processes`` workers shares the same budget: each
    worker holds ``memory_limit / processes``, so the process tree's peak is
    ``processes`` idle workers' baselines plus ``memory_limit`` plus slack
    (under ``"auto"`` the parent is one of the shares; an inventory read in
    the parent keeps its half, and the workers share the rest).

    Attributes:
        part_size: bytes per ranged GET; None picks from the object size:
            8-16 MiB (enough parts for every stream), grown so that no object
            needs more than 10,000 parts.
        concurrency: ranged GETs in flight per object; None picks
            ``min(16, parts)``, always limited by the memory budget.
        memory_limit: the budget every in-flight buffer draws from (64 MiB).
        read_buffer: the per-stream read buffer (256 KiB).
        max_connections: connections kept per HTTP client (the event loop's
            pool, and the worker threads' pool, one thread per connection) (128).
        verify: check checksums (S3 full-object CRC/SHA, single-part MD5 ETag)
            besides sizes and Content-Range, which are always checked (True).
        on_change: what to do when the object changes mid-download (a new
            ETag or version): ``"fail"`` raises ``ObjectChangedError``;
            ``"restart"`` starts over once, from zero, on the new object.
        resume: keep a journal beside each multi-part download's temp file,
            so that running the same download again after a crash fetches
            only the missing parts (True).
        stale_age: seconds after which an abandoned temp file or journal (from
            a crashed run) in a destination directory is removed by the next
            download there; None keeps them (24 hours).
        batch_concurrency: objects downloaded at once by ``download_many`` /
            ``download_prefix`` (128); each still needs budget for its
            streams. A small object waits ~20-50 ms for its first byte from
            S3 and costs well under 1 ms of CPU: at 64 at once a batch of
            them waited on the latency, at 128 on the CPU (bench/PROFILE.md).
        large_object_threshold: objects above this size (known from a listing
            or inventory) go to a separate lane, so a few huge objects cannot
            starve many small ones, nor the reverse (64 MiB).
        large_objects: objects of the large lane downloaded at once, each with
            up to ``concurrency`` ranged GETs (2).
        request_payer: ``"requester"`` sends ``x-amz-request-payer:
            requester`` (signed) with every HEAD, GET and listing, to read a
            Requester Pays bucket at the caller's cost (None: not sent).
        sse_c_key: the 32-byte AES-256 key of objects encrypted with SSE-C,
            sent (base64, with its MD5) with every HEAD and GET, never with
            listings; never shown in a repr, an error or a log (None).
        max_bandwidth: the most bytes/s all of the client's bodies together
            may be read at, e.g. ``"50MiB"`` or ``"50MiB/s"``: one token bucket,
            with a burst of ``max(stream_cost, max_bandwidth / 10)``, shared by
            every stream of every object; 0 or None: unlimited (None).
        processes: worker processes a batch (``download_many``,
            ``download_prefix``) is spread over, each with its own event
            loop, connection pool and ``memory_limit / processes`` of the
            budget; 1 runs it in this process; ``"auto"`` runs it in this
            process, joined by one worker per other core for a batch of many
            small listed objects (at least 1000, 1 MiB or less on average),
            each of them with ``memory_limit / cores`` (see
            ``s3pull.executors._pool``) ("auto").
        timeouts: see :class:`Timeouts`.
        retry: see :class:`RetryConfig`.
        breakers: see :class:`BreakerConfig`.
        metrics: record Prometheus metrics (``s3pull.metrics``, the
            ``s3pull[metrics]`` extra) in ``prometheus_client``'s default
            registry; ``Client(metrics=registry)`` picks another (False).
    """

    part_size: int | None = None
    concurrency: int | None = None
    memory_limit: int = 64 * MiB
    read_buffer: int = 256 * KiB
    max_connections: int = 128
    verify: bool = True
    on_change: str = "fail"
    resume: bool = True
    stale_age: float | None = 24 * 3600.0
    batch_concurrency: int = 128
    large_object_threshold: int = 64 * MiB
    large_objects: int = 2
    request_payer: str | None = None
    sse_c_key: bytes | None = field(default=None, repr=False)
    max_bandwidth: int | None = None
    processes: int | str = "auto"
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryConfig = field(default_factory=RetryConfig)
    breakers: BreakerConfig = field(default_factory=BreakerConfig)
    metrics: bool = False

    def __post_init__(self) -> None:
        if self.part_size is not None:
            object.__setattr__(self, "part_size", parse_size(self.part_size))
            if self.part_size < 1:
                raise ConfigError("part_size must be at least 1 byte")
        if self.concurrency is not None and (not _whole(self.concurrency) or self.concurrency < 1):
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency!r}")
        object.__setattr__(self, "memory_limit", parse_size(self.memory_limit))
        object.__setattr__(self, "read_buffer", parse_size(self.read_buffer))
        if self.read_buffer < 4 * KiB:
            raise ConfigError(f"read_buffer must be at least 4 KiB, got {self.read_buffer}")
        if self.memory_limit < self.stream_cost:
            raise ConfigError(
                f"memory_limit {self.memory_limit} bytes is below the cost of one stream "
                f"({self.stream_cost} bytes = 2 x read_buffer + 256 KiB)"
            )
        if not _whole(self.max_connections) or self.max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {self.max_connections!r}")
        if not isinstance(self.metrics, bool):
            raise ConfigError(f"metrics must be True or False, got {self.metrics!r}")
        if self.on_change not in ("fail", "restart"):
            raise ConfigError(f"on_change must be 'fail' or 'restart', got {self.on_change!r}")
        _positive_number("stale_age", self.stale_age, allow_none=True)
        for name in ("batch_concurrency", "large_objects"):
            value = getattr(self, name)
            if not _whole(value) or value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value!r}")
        object.__setattr__(self, "large_object_threshold", parse_size(self.large_object_threshold))
        if self.request_payer is not None and self.request_payer not in REQUEST_PAYERS:
            raise ConfigError(f"request_payer must be 'requester', got {self.request_payer!r}")
        if self.sse_c_key is not None:
            # Only the type and the length are told: the key itself never is.
            if not isinstance(self.sse_c_key, bytes):
                raise ConfigError(f"sse_c_key must be bytes, got a {type(self.sse_c_key).__name__}")
            if len(self.sse_c_key) != SSE_C_KEY_BYTES:
                raise ConfigError(
                    f"sse_c_key must be {SSE_C_KEY_BYTES} bytes (AES-256), "
                    f"got {len(self.sse_c_key)}"
                )
        if self.max_bandwidth is not None:
            try:
                rate = parse_rate(self.max_bandwidth)
            except ConfigError as exc:
                raise ConfigError(f"max_bandwidth: {exc.message}") from None
            object.__setattr__(self, "max_bandwidth", rate or None)  # 0: unlimited
        self._check_processes()

    def _check_processes(self) -> None:
        processes = self.processes
        if processes == "auto":
            return
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ConfigError(f"processes must be 'auto' or >= 1, got {processes!r}")
        if self.memory_limit // processes < self.stream_cost:
            raise ConfigError(
                f"memory_limit {self.memory_limit} bytes cannot be shared by {processes} "
                f"processes: each needs at least one stream ({self.stream_cost} bytes)"
            )

    @property
    def stream_cost(self) -> int:
        """The most one in-flight GET may hold, charged alike for both HTTP
        clients: a worker thread's read buffer; on the loop, ``read_buffer``
        waiting unread plus one socket read, with room to spare."""
        return 2 * self.read_buffer + SOCKET_READ_SIZE

    @property
    def max_streams(self) -> int:
        """How many GETs the memory budget admits at once."""
        return self.memory_limit // self.stream_cost


def load_sse_c_key(path: str | None = None) -> bytes | None:
    """The SSE-C key in the file at ``path`` (its 32 raw bytes), else the
    base64 one in ``S3PULL_SSE_C_KEY``, else None. Errors never quote the key.

    Raises:
        ConfigError: the file cannot be read, or the variable is not base64.
    """
    if path is not None:
        try:
            with open(path, "rb") as file:
                return file.read(SSE_C_KEY_BYTES + 1)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the SSE-C key file {path}: {exc.strerror or exc}"
            ) from None
    text = os.environ.get(SSE_C_KEY_ENV)
    if not text:
        return None
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{SSE_C_KEY_ENV} is not base64") from None
