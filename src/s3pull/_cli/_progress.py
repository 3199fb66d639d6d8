"""Progress on stderr: rich bars on a terminal, throttled lines otherwise."""

from __future__ import annotations

from typing import Any

from .._errors import S3PullError
from .._events import LoggingSubscriber, Subscriber
from .._results import BatchResult, DownloadResult

#: Without a terminal, many-object progress is one line this often.
PLAIN_PROGRESS_SECONDS = 5.0


class _RichProgress(Subscriber):
    """Progress bars on a terminal (bytes, rate, ETA)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def on_queued(self, source: str, size: int) -> None:
        name = source.rsplit("/", 1)[-1] or source
        self._tasks[source] = self.progress.add_task(name, total=size)

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source in self._tasks:
            self.progress.update(self._tasks[source], completed=done)

    def on_done(self, result: DownloadResult) -> None:
        if result.source in self._tasks:
            self.progress.update(self._tasks[result.source], completed=result.bytes)


class _PlainProgress(LoggingSubscriber):
    """Throttled progress lines when stderr is not a terminal; the CLI prints
    its own summary line, so the logger's "done" line would say it twice."""

    def on_done(self, result: DownloadResult) -> None:
        pass


class _BatchBars(Subscriber):
    """Two bars for many objects: objects finished, and bytes (of the objects
    started so far: a streamed listing's total is not known in advance)."""

    def __init__(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        self.objects = Progress(
            TextColumn("[bold]{task.description}"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"),
            console=console,
        )
        self.bytes = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._live = Live(Group(self.objects, self.bytes), console=console)
        self._objects = self.objects.add_task("objects", total=None, failed="")
        self._bytes = self.bytes.add_task("bytes", total=0)
        self._total = 0
        self._started: dict[str, int] = {}

    def __enter__(self) -> _BatchBars:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def counted(self, result: BatchResult, listed: int | None) -> None:
        """The batch's outcome so far (``listed``: the total, once known)."""
        failed = f"[red]{result.failed} failed" if result.failed else ""
        self.objects.update(self._objects, completed=result.objects, total=listed, failed=failed)

    def on_queued(self, source: str, size: int) -> None:
        if source not in self._started:
            self._started[source] = 0
            self._total += size
            self.bytes.update(self._bytes, total=self._total)

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source in self._started:
            self.bytes.advance(self._bytes, done - self._started[source])
            self._started[source] = done

    def on_done(self, result: DownloadResult) -> None:
        self.on_progress(result.source, result.bytes, result.bytes)
        self._started.pop(result.source, None)

    def on_error(self, source: str, error: S3PullError) -> None:
        self._started.pop(source, None)
