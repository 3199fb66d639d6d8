"""Crash resume: a journal of the parts a temp file already holds, durably.

A download killed by ``kill -9``, an OOM killer or a power cut leaves its
temp file behind (nothing else can remove it). The journal beside it lets
the next run of the same download keep those bytes:

- It names what the bytes are a copy of (:class:`Identity`: source, ETag,
  version, size, part size, checksum algorithm) and which parts are
  complete, with each part's CRC when the object is checked by a CRC, so
  the final check still covers every byte.
- A part enters the journal only after the temp file was ``fdatasync``-ed
  with it, and the journal itself is replaced atomically (write a new file,
  ``rename``): what the journal says is on disk, is on disk.
- A later run looks for a journal of the same destination. The same identity
  means: reopen that temp file and fetch only the missing parts. A different
  identity (the object changed) means the old files are removed and the
  download starts from zero.

Temp files are locked (``flock``) while a download owns them, so two runs
never share one, and cleaning never removes a live download's file.

Journals are small (a few bytes per part) and written at most once per
``interval`` seconds per download, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ._tempfile import TEMP_MARKER, TEMP_SUFFIX, try_lock

JOURNAL_SUFFIX = ".journal"
_FORMAT = 1
#: Every file s3pull leaves while working: ``.<name>.s3pull-<12 hex>.part``,
#: its ``.journal``, and the journal's own temp file ``.journal.new``.
_OWN_FILE = re.compile(
    r"^\..*" + re.escape(TEMP_MARKER) + r"[0-9a-f]{12}(\.part|\.journal|\.journal\.new)$",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the bytes in a temp file are a copy of; resume only on an exact match."""

    source: str
    etag: str | None
    version_id: str | None
    size: int
    part_size: int
    checksum: str | None


@dataclass(frozen=True, slots=True)
class Resumable:
    """A crashed run's temp file and the parts it holds (index -> CRC or None)."""

    part_path: Path
    parts: dict[int, int | None]


def journal_path(part_path: Path) -> Path:
    """The journal beside a temp file."""
    return part_path.with_name(part_path.name.removesuffix(TEMP_SUFFIX) + JOURNAL_SUFFIX)


def is_own_file(name: str) -> bool:
    """Whether ``name`` is a temp file, journal or journal temp that s3pull made."""
    return _OWN_FILE.match(name) is not None


def in_use(path: Path) -> bool:
    """Whether a live download (in any process) holds ``path`` locked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)  # closing drops the lock we may have taken


class Journal:
    """The durable record of one temp file's complete parts.

    Args:
        path: the journal file (see :func:`journal_path`).
        identity: what the temp file holds.
        parts: parts already known durable (from a crashed run).
        interval: the shortest time between two writes.
        clock: a monotonic clock, injected by tests.
    """

    def __init__(
        self,
        path: Path,
        identity: Identity,
        parts: dict[int, int | None] | None = None,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.identity = identity
        self.interval = interval
        self._clock = clock
        self._parts: dict[int, int | None] = dict(parts or {})
        self._written = len(self._parts)
        self._last_write = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._writing = False
        self._closed = False
        self.failed = False

    @property
    def parts(self) -> dict[int, int | None]:
        """Complete parts (index -> CRC or None), durable or about to be."""
        return self._parts

    def record(self, index: int, crc: int | None, fd: int) -> None:
        """Note that part ``index`` is complete in ``fd``; it is made durable soon."""
        self._parts[index] = crc
        if self.failed or self._closed or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._write_later(fd))

    async def _write_later(self, fd: int) -> None:
        await asyncio.sleep(max(0.0, self._last_write + self.interval - self._clock()))
        while len(self._parts) > self._written and not (self.failed or self._closed):
            snapshot = dict(self._parts)
            self._last_write = self._clock()
            self._writing = True
            try:
                await asyncio.to_thread(self._write, fd, snapshot)
            except OSError:
                # A journal that cannot be written costs only the ability to
                # resume after a crash; the download itself goes on.
                self.failed = True
                return
            finally:
                self._writing = False
            self._written = len(snapshot)

    def _write(self, fd: int, parts: dict[int, int | None]) -> None:
        os.fdatasync(fd)  # the bytes first, then the claim that they are there
        record = {"format": _FORMAT, "identity": asdict(self.identity), "parts": parts}
        new = self.path.with_name(self.path.name + ".new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(new, flags, 0o600)
        try:
            os.write(out, json.dumps(record, separators=(",", ":")).encode())
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(new, self.path)

    async def close(self) -> None:
        """Stop writing (the download is over, one way or another).

        A write already in its thread is waited for, so that nothing writes the
        journal after this returns.
        """
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        if not self._writing:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def remove(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".new")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def read_journal(path: Path) -> tuple[Identity, dict[int, int | None]] | None:
    """The identity and parts a journal records, or None if it is unreadable."""
    try:
        record = json.loads(path.read_bytes())
        if record.get("format") != _FORMAT:
            return None
        identity = Identity(**record["identity"])
        parts = {int(index): crc for index, crc in record["parts"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return identity, parts


def find_resumable(temp_prefix: str, directory: Path, identity: Identity) -> Resumable | None:
    """A crashed run's temp file for the same object, if one is there.

    Journals of the same destination (their names start with ``temp_prefix``)
    that describe another version of the object are removed with their temp
    files: a changed object restarts from zero.
    """
    found = None
    for journal in _own_journals(directory, temp_prefix):
        part_path = journal.with_name(journal.name.removesuffix(JOURNAL_SUFFIX) + TEMP_SUFFIX)
        if in_use(part_path):
            continue  # another run is downloading it right now
        recorded = read_journal(journal)
        same = recorded is not None and recorded[0] == identity
        if found is None and recorded is not None and same and part_path.is_file():
            found = Resumable(part_path, recorded[1])
            continue
        if recorded is None or recorded[0].source == identity.source:
            _remove_quietly(part_path, journal)
    return found


def _own_journals(directory: Path, temp_prefix: str) -> Iterator[Path]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith(temp_prefix) and name.endswith(JOURNAL_SUFFIX) and is_own_file(name):
            yield Path(entry.path)


def stale_files(root: Path, older_than: float, *, recursive: bool, now: float) -> list[Path]:
    """s3pull's own leftovers under ``root`` untouched for ``older_than`` seconds
    and not held by a live download."""
    found = []
    walk = os.walk(root) if recursive else [(str(root), [], _names(root))]
    for directory, _, names in walk:
        for name in names:
            if not is_own_file(name):
                continue
            path = Path(directory, name)
            try:
                status = path.lstat()
            except OSError:
                continue
            if now - status.st_mtime < older_than or not stat.S_ISREG(status.st_mode):
                continue
            if in_use(_part_of(path)):
                continue
            found.append(path)
    return found


def _names(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _part_of(path: Path) -> Path:
    """The temp file an s3pull file belongs to (itself, for a temp file)."""
    stem, _, rest = path.name.rpartition(TEMP_MARKER)
    return path.with_name(f"{stem}{TEMP_MARKER}{rest[:12]}{TEMP_SUFFIX}")


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
