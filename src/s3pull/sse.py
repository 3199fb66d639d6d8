"""Server-Sent Events for web apps: a client's downloads as an ``EventSource`` stream.

An :class:`EventStream` is a subscriber; each browser that follows it is a
listener that gets an async iterator of ready-to-send SSE frames
(:meth:`EventStream.listen`). No web framework is needed for that;
:func:`starlette_response` wraps it for Starlette and FastAPI (the
``s3pull[web]`` extra)::

    stream = EventStream()
    client = AsyncClient(subscribers=[stream])

    @app.get("/events")
    async def events(request: Request) -> StreamingResponse:
        return starlette_response(stream, request)

    # elsewhere: await client.download_prefix(...); stream.close({...})

The frames are named events with JSON data: ``progress`` (``source``,
``bytes``, ``total``, ``rate`` in bytes/s, ``eta`` in s, ``attempt``),
``done`` (the same, with ``seconds`` and ``verified``), ``error`` (with
``error`` and ``kind``), and ``summary`` once :meth:`EventStream.close` is
called, after which every listener's iterator ends.

How it behaves:

- **A slow browser never slows a download.** Events only update the
  listeners' buffers: per listener, the latest progress of each download
  (a newer value replaces an unsent one) and a queue of final events.
- **At most ``1 / min_interval`` (4) progress frames a second per download**
  per listener; the final ``done`` / ``error`` is always delivered, never
  coalesced, and after the download's last progress.
- **Resuming.** Every frame has an ``id:`` that only grows. A browser that
  reconnects sends ``Last-Event-ID``; it then gets the final events it
  missed (the last ``replay`` of them are kept) and the current progress of
  every download in flight. A ``retry:`` hint tells it how soon to reconnect.
- **Keep-alive.** A comment line after ``keepalive`` seconds (15) without a
  frame, so proxies do not close an idle stream.
- **A disconnect ends that listener only.** The downloads go on: they belong
  to the client, not to the browser; cancel the task that runs them if a
  disconnect should stop them.

Events may arrive from another thread (the sync ``Client``'s loop): the
buffers are guarded by a lock, and a listener is woken on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ConfigError, S3PullError
from ._events import Rate, Subscriber, eta
from ._results import DownloadResult

__all__ = ["EventStream", "format_frame", "starlette_response"]

#: Final events kept for browsers that reconnect.
REPLAY = 10_000


def format_frame(event: str, data: Mapping[str, Any], event_id: int | None = None) -> str:
    """One SSE frame: ``id:``, ``event:`` and a one-line JSON ``data:``.

    Example:
        >>> format_frame("done", {"source": "s3://b/k"}, 7)
        'id: 7\\nevent: done\\ndata: {"source": "s3://b/k"}\\n\\n'
    """
    head = f"id: {event_id}\n" if event_id is not None else ""
    # json.dumps never writes a raw newline, so one data line always suffices.
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(', ', ': '))}\n\n"


@dataclass
class _Download:
    """What the stream knows of one download in flight."""

    total: int
    done: int = 0
    attempt: int = 1
    rate: Rate = field(default_factory=Rate)
    #: The id of the latest progress event.
    event_id: int = 0

    def payload(self, source: str, now: float) -> dict[str, Any]:
        self.rate.add(now, self.done)
        speed = self.rate.per_second()
        left = eta(self.done, self.total, speed)
        return {
            "source": source,
            "bytes": self.done,
            "total": self.total,
            "rate": round(speed, 1) if speed is not None else None,
            "eta": round(left, 1) if left is not None else None,
            "attempt": self.attempt,
        }


class _Listener:
    """One browser: the latest unsent progress per download, the unsent finals."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wake = asyncio.Event()
        self.progress: dict[str, int] = {}  # source -> id of its unsent latest progress
        self.finals: deque[tuple[int, str]] = deque()  # (id, frame)
        self.sent_at: dict[str, float] = {}  # source -> when its last progress frame went
        self.closed = False

    def notify(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.wake.set()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake.set)


class EventStream(Subscriber):
    """A subscriber that serves a client's events to browsers as SSE frames.

    Args:
        min_interval: seconds between two progress frames of one download,
            per listener (0.25: at most 4 a second).
        keepalive: seconds without a frame before a keep-alive comment (15).
        retry_ms: the ``retry:`` hint, how soon a browser reconnects (2000).
        replay: final events kept for ``Last-Event-ID`` (10,000).
        clock: seconds on a monotonic clock (injected by tests).

    Example:
        >>> stream = EventStream()
        >>> stream.on_queued("s3://b/k", 10)
        >>> stream.on_progress("s3://b/k", 4, 10)
        >>> stream.snapshot()["s3://b/k"]["bytes"]
        4
    """

    def __init__(
        self,
        *,
        min_interval: float = 0.25,
        keepalive: float = 15.0,
        retry_ms: int = 2000,
        replay: int = REPLAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_interval < 0 or keepalive <= 0 or retry_ms < 0 or replay < 0:
            raise ConfigError("EventStream: intervals must be positive and counts not negative")
        self.min_interval = min_interval
        self.keepalive = keepalive
        self.retry_ms = retry_ms
        self.clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._downloads: dict[str, _Download] = {}
        self._finals: deque[tuple[int, str]] = deque(maxlen=replay)
        self._listeners: set[_Listener] = set()
        self._closed = False

    # -- what listeners see ---------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The latest progress of every download in flight, by source."""
        with self._lock:
            now = self.clock()
            return {
                source: download.payload(source, now)
                for source, download in self._downloads.items()
            }

    @property
    def listeners(self) -> int:
        """Browsers following the stream now."""
        return len(self._listeners)

    async def listen(self, last_event_id: str | int | None = None) -> AsyncIterator[str]:
        """The frames for one browser, until :meth:`close` (or the browser leaves).

        Args:
            last_event_id: the ``Last-Event-ID`` a reconnecting browser sent:
                the final events after it are replayed first. A value that
                is not a number is ignored (a fresh start).
        """
        listener = _Listener(asyncio.get_running_loop())
        after = _event_id(last_event_id)
        with self._lock:
            if after is not None:
                listener.finals.extend(final for final in self._finals if final[0] > after)
            for source, download in self._downloads.items():
                listener.progress[source] = download.event_id
            listener.closed = self._closed
            self._listeners.add(listener)
        last_id = after or 0
        try:
            yield f"retry: {self.retry_ms}\n\n"
            last_frame = self.clock()
            while True:
                frames, wait, last_id = self._take(listener, last_id)
                for frame in frames:
                    yield frame
                if frames:
                    last_frame = self.clock()
                    continue
                if wait is None:
                    return  # closed, and everything was sent
                idle = self.keepalive - (self.clock() - last_frame)
                if idle <= 0:
                    yield ": keep-alive\n\n"
                    last_frame = self.clock()
                    continue
                listener.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listener.wake.wait(), min(wait, idle))
        finally:
            with self._lock:
                self._listeners.discard(listener)

    def _take(self, listener: _Listener, last_id: int) -> tuple[list[str], float | None, int]:
        """The frames ``listener`` may send now, how long to wait for more
        (None: the stream is closed and drained), and the id sent last."""
        frames: list[str] = []
        with self._lock:
            now = self.clock()
            while listener.finals:
                event_id, frame = listener.finals.popleft()
                last_id = max(last_id, event_id)
                frames.append(frame)
            wait = float("inf")
            for source, event_id in list(listener.progress.items()):
                download = self._downloads.get(source)
                if download is None:
                    del listener.progress[source]  # finished: its final says it all
                    continue
                due = listener.sent_at.get(source, -float("inf")) + self.min_interval
                if now < due:
                    wait = min(wait, due - now)
                    continue
                del listener.progress[source]
                listener.sent_at[source] = now
                # An id never goes back, whatever order downloads progress in.
                last_id = max(last_id, event_id)
                frames.append(format_frame("progress", download.payload(source, now), last_id))
            if not frames and listener.closed and not listener.progress:
                return frames, None, last_id
        return frames, wait, last_id

    # -- events ---------------------------------------------------------------

    def _publish(self, source: str, final: tuple[str, dict[str, Any]] | None = None) -> None:
        """Tell every listener ``source`` progressed, or ended with ``final``."""
        with self._lock:
            event_id = next(self._ids)
            if final is None:
                download = self._downloads.get(source)
                if download is None:
                    return
                download.event_id = event_id
                for listener in self._listeners:
                    listener.progress[source] = event_id
            else:
                frame = format_frame(final[0], final[1], event_id)
                self._finals.append((event_id, frame))
                for listener in self._listeners:
                    listener.finals.append((event_id, frame))
                    listener.progress.pop(source, None)
                    listener.sent_at.pop(source, None)
            listeners = list(self._listeners)
        for listener in listeners:
            listener.notify()

    def on_queued(self, source: str, size: int) -> None:
        with self._lock:
            known = self._downloads.get(source)
            if known is None:
                self._downloads[source] = _Download(size)
            else:
                known.total = size
        self._publish(source)

    def on_progress(self, source: str, done: int, total: int) -> None:
        with self._lock:
            download = self._downloads.setdefault(source, _Download(total))
            download.done, download.total = done, total
        self._publish(source)

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        with self._lock:
            download = self._downloads.get(source)
            if download is not None:
                download.attempt = attempt + 1
        self._publish(source)

    def on_done(self, result: DownloadResult) -> None:
        with self._lock:
            download = self._downloads.pop(result.source, None)
            attempt = download.attempt if download is not None else 1
        data = {
            "source": result.source,
            "bytes": result.bytes,
            "total": result.bytes,
            "rate": round(result.throughput, 1),
            "eta": 0,
            "attempt": attempt,
            "seconds": round(result.seconds, 3),
            "verified": result.verified,
        }
        self._publish(result.source, ("done", data))

    def on_error(self, source: str, error: S3PullError) -> None:
        with self._lock:
            download = self._downloads.pop(source, None)
        data: dict[str, Any] = {
            "source": source,
            "bytes": download.done if download is not None else 0,
            "total": download.total if download is not None else None,
            "rate": None,
            "eta": None,
            "attempt": error.attempts or (download.attempt if download is not None else 1),
            "error": str(error),
            "kind": type(error).__name__,
        }
        self._publish(source, ("error", data))

    def close(self, summary: Mapping[str, Any] | None = None) -> None:
        """End the stream: listeners get what is buffered, then a ``summary``
        event with ``summary`` as its data, and their iterators end."""
        self._publish("", ("summary", dict(summary or {})))
        with self._lock:
            self._closed = True
            listeners = list(self._listeners)
            for listener in listeners:
                listener.closed = True
        for listener in listeners:
            listener.notify()


def _event_id(value: str | int | None) -> int | None:
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


def starlette_response(stream: EventStream, request: Any) -> Any:
    """A Starlette / FastAPI ``StreamingResponse`` of ``stream`` for ``request``
    (its ``Last-Event-ID`` header resumes). Starlette ends the listener when
    the browser disconnects; the downloads go on.

    Raises:
        ConfigError: Starlette is not installed (``pip install 's3pull[web]'``).
    """
    try:
        from starlette.responses import StreamingResponse
    except ImportError as exc:
        raise ConfigError("s3pull.sse needs starlette: pip install 's3pull[web]'") from exc
    return StreamingResponse(
        stream.listen(request.headers.get("last-event-id")),
        media_type="text/event-stream",
        # No proxy may buffer or cache a live stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
