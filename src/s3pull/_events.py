"""Events, not UI: subscribers hear about queued, progressing, retried and
finished downloads. ``rich`` progress bars live in the CLI, as one subscriber.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from ._errors import S3PullError
from ._results import DownloadResult
from ._units import format_size

logger = logging.getLogger("s3pull")


class Rate:
    """Bytes per second over the last ``window`` seconds.

    A rate the CLI's bars, its JSON lines and ``s3pull.sse`` all show. rich's
    own estimate divides the bytes of its last 1,000 updates by their
    time span, and freezes once a task reaches its total: with thousands of
    small updates a second, or a total that grows, it showed ``0 bytes/s``.

    Example:
        >>> rate = Rate()
        >>> rate.add(0.0, 0); rate.add(2.0, 4 << 20)
        >>> rate.per_second() == 2 << 20
        True
    """

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        """``done`` bytes at time ``now``."""
        samples = self._samples
        samples.append((now, done))
        # Keep one sample older than the window, so the span covers it all.
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()

    def per_second(self) -> float | None:
        """The rate, or None before two samples apart in time."""
        if len(self._samples) < 2:
            return None
        (first, first_done), (last, last_done) = self._samples[0], self._samples[-1]
        if last <= first:
            return None
        return max(0.0, (last_done - first_done) / (last - first))


def eta(done: int, total: int | None, rate: float | None) -> float | None:
    """Seconds until ``total``, at ``rate``; None when either is unknown."""
    if total is None or not rate:
        return None
    return max(0, total - done) / rate


class Written:
    """Bytes written to the temp files of downloads in flight, by source:
    what a commit (the rename) or a failure (the removal) takes out of temp
    space. Metrics and the CLI's ``--stats-json`` both count temp space so.

    Example:
        >>> written = Written()
        >>> written.update("a", 5), written.update("b", 3), written.update("a", 2)
        (5, 3, -3)
        >>> written.finish("b"), written.total, written.peak
        (3, 2, 8)
    """

    def __init__(self) -> None:
        self._by_source: dict[str, int] = {}
        #: Bytes in temp files now, and the most there ever were at once.
        self.total = 0
        self.peak = 0

    def update(self, source: str, done: int) -> int:
        """``source`` has ``done`` bytes written; returns the change (negative
        when written bytes were discarded)."""
        change = done - self._by_source.get(source, 0)
        self._by_source[source] = done
        self.total += change
        self.peak = max(self.peak, self.total)
        return change

    def finish(self, source: str) -> int:
        """``source`` was committed or removed: returns the bytes it had."""
        written = self._by_source.pop(source, 0)
        self.total -= written
        return written


class Subscriber:
    """Override what you need; every method is a no-op by default.

    Callbacks run on the event loop (the client's background thread for the
    sync ``Client``): keep them short.

    Example:
        >>> class Printer(Subscriber):
        ...     def on_progress(self, source, done, total):
        ...         print(f"{source}: {done}/{total}")
    """

    def on_listed(self, objects: int, size: int | None) -> None:
        """A batch's items have all been listed (or read): ``objects`` in all,
        of ``size`` bytes if every item's size was known (None otherwise)."""

    def on_queued(self, source: str, size: int) -> None:
        """The object's size is known and its download starts."""

    def on_progress(self, source: str, done: int, total: int) -> None:
        """``done`` bytes of ``total`` are written. It goes backwards only when
        written bytes had to be discarded (a server that ignored Range)."""

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        """``error`` ended attempt ``attempt``; the next one starts in ``delay`` s."""

    def on_done(self, result: DownloadResult) -> None:
        """The file is complete, verified and in place."""

    def on_error(self, source: str, error: S3PullError) -> None:
        """The download failed for good; nothing was left at the destination."""

    def on_request(self, op: str, status: int, seconds: float) -> None:
        """A request to the store was answered, or failed without an answer.

        ``op`` is ``GET``, ``HEAD`` or ``LIST``; ``status`` the HTTP status,
        0 when no answer came (refused, reset, timed out); ``seconds`` from
        sending the request to the answer's head (the time to first byte).
        Told by the client's own process only: workers of ``processes`` or
        Celery keep theirs. Only subscribers that override it are called, so
        it costs nothing otherwise.
        """


class LoggingSubscriber(Subscriber):
    """Logs progress at INFO: the default when no subscriber is given.

    A line per object at most every ``every_seconds`` (5 s) and only once
    ``every_bytes`` (1 MB) more are written since the last: both limits, so
    a fast download does not log every few hundred MB (a log of a 1 GiB copy
    holds one line per interval, not 21), and a stalled one does not repeat
    itself. ``clock`` is for tests.
    """

    def __init__(
        self,
        every_bytes: int = 1_000_000,
        every_seconds: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_bytes = every_bytes
        self.every_seconds = every_seconds
        self.clock = clock
        self._last: dict[str, tuple[int, float]] = {}

    def on_queued(self, source: str, size: int) -> None:
        self._last[source] = (0, self.clock())
        if logger.isEnabledFor(logging.DEBUG):  # sizes are formatted only for a line written
            logger.debug("downloading %s (%s)", source, format_size(size))

    def on_progress(self, source: str, done: int, total: int) -> None:
        last_bytes, last_time = self._last.get(source, (0, 0.0))
        now = self.clock()
        if done - last_bytes >= self.every_bytes and now - last_time >= self.every_seconds:
            self._last[source] = (done, now)
            percent = 100 * done / total if total else 100.0
            logger.info(
                "%s: %s of %s (%.0f%%)", source, format_size(done), format_size(total), percent
            )

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        logger.info("%s: attempt %d failed (%s); retrying in %.2f s", source, attempt, error, delay)

    def on_done(self, result: DownloadResult) -> None:
        self._last.pop(result.source, None)
        if not logger.isEnabledFor(logging.INFO):
            return  # the default: a batch's thousands of lines are not even formatted
        logger.info(
            "%s -> %s: %s in %.2f s (%s/s)",
            result.source,
            result.path,
            format_size(result.bytes),
            result.seconds,
            format_size(result.throughput),
        )

    def on_error(self, source: str, error: S3PullError) -> None:
        self._last.pop(source, None)


#: The methods :class:`Events` calls through ``_each``.
_EVENTS = ("on_listed", "on_queued", "on_progress", "on_retry", "on_done", "on_error")


def _hears(subscriber: object, method: str) -> bool:
    """Whether ``subscriber`` has a ``method`` of its own, not Subscriber's no-op."""
    if getattr(type(subscriber), method, None) is not getattr(Subscriber, method):
        return True
    return method in getattr(subscriber, "__dict__", ())


class Events:
    """Fans each event out to every subscriber; a failing subscriber is logged, not fatal."""

    def __init__(self, subscribers: Iterable[Subscriber]) -> None:
        self.subscribers = tuple(subscribers)
        #: Those that override ``on_request``: the transport asks this
        #: before it even reads the clock, so requests cost nothing unheard.
        self.request_subscribers = tuple(
            subscriber
            for subscriber in self.subscribers
            if type(subscriber).on_request is not Subscriber.on_request
        )
        #: Per event, the subscribers that override its method: Subscriber's
        #: own do nothing, and a batch sends several events per object.
        self._hearing = {
            name: tuple(subscriber for subscriber in self.subscribers if _hears(subscriber, name))
            for name in _EVENTS
        }

    def _each(self, method: str, *args: object) -> None:
        for subscriber in self._hearing[method]:
            try:
                getattr(subscriber, method)(*args)
            except Exception:
                logger.exception("subscriber %r failed in %s", subscriber, method)

    def listed(self, objects: int, size: int | None) -> None:
        self._each("on_listed", objects, size)

    def queued(self, source: str, size: int) -> None:
        self._each("on_queued", source, size)

    def progress(self, source: str, done: int, total: int) -> None:
        self._each("on_progress", source, done, total)

    def retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        self._each("on_retry", source, error, attempt, delay)

    def done(self, result: DownloadResult) -> None:
        self._each("on_done", result)

    def error(self, source: str, error: S3PullError) -> None:
        self._each("on_error", source, error)

    def request(self, op: str, status: int, seconds: float) -> None:
        for subscriber in self.request_subscribers:
            try:
                subscriber.on_request(op, status, seconds)
            except Exception:
                logger.exception("subscriber %r failed in on_request", subscriber)
