"""Progress on stderr, as subscribers of the download events.

``--progress`` picks one: ``bar`` (rich bars), ``plain`` (a log line per
object every ``PLAIN_PROGRESS_SECONDS``), ``json`` (the same, as one JSON
object per line, for CI logs and supervisors), ``none``; ``auto`` is bars on
a terminal and plain lines otherwise. Every rate is measured here, over the
last few seconds, with one clock (injectable, for tests) and shown in binary
units (KiB/s, MiB/s), as the summary line is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO, Any

from .._errors import S3PullError
from .._events import LoggingSubscriber, Rate, Subscriber, eta
from .._results import BatchResult, DownloadResult
from .._units import format_size

#: Without a terminal, progress is one line (per object, or per batch) this often.
PLAIN_PROGRESS_SECONDS = 10.0
#: ``--progress`` values.
PROGRESS_MODES = ("auto", "bar", "plain", "json", "none")

Clock = Callable[[], float]


def speed_text(rate: float | None) -> str:
    return f"{format_size(rate)}/s" if rate is not None else "?"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _console(file: IO[str] | None) -> Any:
    from rich.console import Console

    if file is None:
        return Console(stderr=True)
    return Console(file=file, force_terminal=True, width=120)


class _RichProgress(Subscriber):
    """A bar per object on a terminal: bytes, rate, ETA."""

    def __init__(self, file: IO[str] | None = None, clock: Clock = time.monotonic) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.clock = clock
        self.progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[eta]}"),
            console=_console(file),
            transient=False,
            get_time=clock,
        )
        self._tasks: dict[str, tuple[Any, Rate]] = {}

    def __enter__(self) -> _RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def on_queued(self, source: str, size: int) -> None:
        name = source.rsplit("/", 1)[-1] or source
        task = self.progress.add_task(name, total=size, speed="?", eta=eta_text(None))
        self._tasks[source] = (task, Rate())
        self._tasks[source][1].add(self.clock(), 0)

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source in self._tasks:
            task, rate = self._tasks[source]
            rate.add(self.clock(), done)
            speed = rate.per_second()
            self.progress.update(
                task,
                completed=done,
                speed=speed_text(speed),
                eta=eta_text(eta(done, total, speed)),
            )

    def on_done(self, result: DownloadResult) -> None:
        if result.source in self._tasks:
            task, _ = self._tasks.pop(result.source)
            speed = speed_text(result.throughput)
            self.progress.update(task, completed=result.bytes, speed=speed, eta=eta_text(0))


class _PlainProgress(LoggingSubscriber):
    """A progress line per object every ``PLAIN_PROGRESS_SECONDS`` when stderr
    is not a terminal; the CLI prints its own summary line, so the logger's
    "done" line would say it twice."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        super().__init__(every_bytes=1, every_seconds=PLAIN_PROGRESS_SECONDS, clock=clock)

    def on_done(self, result: DownloadResult) -> None:
        pass


class _JsonProgress(Subscriber):
    """``--progress=json``: per object, at most every ``every_seconds``, one line
    ``{"event": "progress", "source", "bytes", "total", "rate", "eta"}`` on
    stderr (``rate`` in bytes/s, ``eta`` in seconds, null until known), and
    ``{"event": "done", ...}`` when it is complete."""

    def __init__(
        self,
        stream: IO[str],
        clock: Clock = time.monotonic,
        every_seconds: float = PLAIN_PROGRESS_SECONDS,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.every_seconds = every_seconds
        self._objects: dict[str, tuple[Rate, list[float]]] = {}

    def _line(self, event: str, source: str, done: int, total: int, rate: float | None) -> None:
        seconds = eta(done, total, rate)
        fields = {
            "event": event,
            "source": source,
            "bytes": done,
            "total": total,
            "rate": round(rate, 1) if rate is not None else None,
            "eta": round(seconds, 1) if seconds is not None else None,
        }
        self.stream.write(json.dumps(fields) + "\n")
        self.stream.flush()

    def on_queued(self, source: str, size: int) -> None:
        now = self.clock()
        rate = Rate()
        rate.add(now, 0)
        self._objects[source] = (rate, [now])

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source not in self._objects:
            return
        rate, last = self._objects[source]
        now = self.clock()
        rate.add(now, done)
        if now - last[0] >= self.every_seconds:
            last[0] = now
            self._line("progress", source, done, total, rate.per_second())

    def on_done(self, result: DownloadResult) -> None:
        self._objects.pop(result.source, None)
        self._line("done", result.source, result.bytes, result.bytes, result.throughput)

    def on_error(self, source: str, error: S3PullError) -> None:
        self._objects.pop(source, None)


class _BatchBars(Subscriber):
    """Two bars for many objects: objects finished, and bytes. Their totals
    are unknown (the bars pulse) until the listing ends (``on_listed``)."""

    def __init__(self, file: IO[str] | None = None, clock: Clock = time.monotonic) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
        )

        console = _console(file)
        self.clock = clock
        self.objects = Progress(
            TextColumn("[bold]{task.description}"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"),
            console=console,
            get_time=clock,
        )
        self.bytes = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[eta]}"),
            console=console,
            get_time=clock,
        )
        self._live = Live(Group(self.objects, self.bytes), console=console)
        self._objects = self.objects.add_task("objects", total=None, failed="")
        self._bytes = self.bytes.add_task("bytes", total=None, speed="?", eta=eta_text(None))
        self._total: int | None = None
        self._done = 0
        self._rate = Rate()
        self._rate.add(clock(), 0)
        self._started: dict[str, int] = {}

    def __enter__(self) -> _BatchBars:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def counted(self, result: BatchResult) -> None:
        """The batch's outcome so far."""
        failed = f"[red]{result.failed} failed" if result.failed else ""
        self.objects.update(self._objects, completed=result.objects, failed=failed)

    def on_listed(self, objects: int, size: int | None) -> None:
        self.objects.update(self._objects, total=objects)
        if size is not None:
            self._total = size
            self.bytes.update(self._bytes, total=size)

    def on_queued(self, source: str, size: int) -> None:
        self._started.setdefault(source, 0)

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source in self._started:
            self._done += done - self._started[source]
            self._started[source] = done
            self._rate.add(self.clock(), self._done)
            speed = self._rate.per_second()
            self.bytes.update(
                self._bytes,
                completed=self._done,
                speed=speed_text(speed),
                eta=eta_text(eta(self._done, self._total, speed)),
            )

    def on_done(self, result: DownloadResult) -> None:
        self.on_progress(result.source, result.bytes, result.bytes)
        self._started.pop(result.source, None)

    def on_error(self, source: str, error: S3PullError) -> None:
        self._started.pop(source, None)
