"""``cp --stats-json FILE``: the numbers an operator wants after a batch.

Counted from the download events, like the progress bars: objects, bytes,
retries, seconds, and the temp-space high-water mark (the most bytes the
run's temp files held at once, uncommitted). The peak RSS is the kernel's
``ru_maxrss`` of this process plus that of its largest finished child (a
worker process of ``--processes``): an upper bound of the tree's peak when
workers ran, exact otherwise. The file is written atomically (temp +
rename), also when objects failed.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import ConfigError, S3PullError
from .._events import Subscriber, Written
from .._results import DownloadResult
from ..sinks import atomic_file


def peak_rss() -> int:
    """Bytes: this process's peak RSS plus its largest waited-for child's."""
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) * scale


class Stats(Subscriber):
    """Counts a run's downloads for ``--stats-json``.

    Example:
        >>> stats = Stats(clock=lambda: 0.0)
        >>> stats.on_progress("s3://b/k", 5, 10)
        >>> stats.summary()["temp_high_water_bytes"]
        5
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.objects = self.failed = self.bytes = self.retries = 0
        self.written = Written()

    def on_progress(self, source: str, done: int, total: int) -> None:
        self.written.update(source, done)

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        self.retries += 1

    def on_done(self, result: DownloadResult) -> None:
        self.objects += 1
        self.bytes += result.bytes
        self.written.finish(result.source)

    def on_error(self, source: str, error: S3PullError) -> None:
        self.failed += 1
        self.written.finish(source)

    def summary(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.clock() - self.started, 3),
            "retries": self.retries,
            "peak_rss_bytes": peak_rss(),
            "temp_high_water_bytes": self.written.peak,
        }


def check_stats_path(name: str) -> Path:
    """``--stats-json``'s FILE, refused before any download if it cannot be written."""
    path = Path(name)
    if not name or path.is_dir() or not path.parent.is_dir():
        raise ConfigError(f"--stats-json {name!r}: not a file in an existing directory")
    return path


def write_stats(path: Path, stats: Stats) -> None:
    with atomic_file(path) as file:
        file.append((json.dumps(stats.summary()) + "\n").encode())
