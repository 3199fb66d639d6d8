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

from .._errors import S3PullError
from ._directory import Directory
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
    """A crashed run's temp file (its name in the directory searched) and the
    parts it holds (index -> CRC or None)."""

    part_name: str
    parts: dict[int, int | None]


def journal_name(part_name: str) -> str:
    """The name of the journal beside a temp file.

    Example:
        >>> journal_name(".a.bin.s3pull-0123456789ab.part")
        '.a.bin.s3pull-0123456789ab.journal'
    """
    return part_name.removesuffix(TEMP_SUFFIX) + JOURNAL_SUFFIX


def is_own_file(name: str) -> bool:
    """Whether ``name`` is a temp file, journal or journal temp that s3pull made."""
    return _OWN_FILE.match(name) is not None


def in_use(name: str, directory: Directory) -> bool:
    """Whether a live download (in any process) holds file ``name`` locked."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory.fd)
    except OSError:
        return False
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)  # closing drops the lock we may have taken


class Journal:
    """The durable record of one temp file's complete parts.

    Args:
        directory: the temp file's directory.
        name: the journal's name there (see :func:`journal_name`).
        identity: what the temp file holds.
        parts: parts already known durable (from a crashed run).
        interval: the shortest time between two writes.
        clock: a monotonic clock, injected by tests.
    """

    def __init__(
        self,
        directory: Directory,
        name: str,
        identity: Identity,
        parts: dict[int, int | None] | None = None,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.name = name
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
    def path(self) -> Path:
        """Where the journal is (the directory is what operations use)."""
        return self.directory / self.name

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
        new, at = self.name + ".new", self.directory.fd
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(new, flags, 0o600, dir_fd=at)
        try:
            os.write(out, json.dumps(record, separators=(",", ":")).encode())
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(new, self.name, src_dir_fd=at, dst_dir_fd=at)

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
        for name in (self.name, self.name + ".new"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.directory.fd)


def read_journal(name: str, directory: Directory) -> tuple[Identity, dict[int, int | None]] | None:
    """The identity and parts journal ``name`` records, or None if it is unreadable."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory.fd)
        with os.fdopen(fd, "rb") as file:
            record = json.loads(file.read())
        if record.get("format") != _FORMAT:
            return None
        identity = Identity(**record["identity"])
        parts = {int(index): crc for index, crc in record["parts"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return identity, parts


def find_resumable(temp_prefix: str, directory: Directory, identity: Identity) -> Resumable | None:
    """A crashed run's temp file for the same object, if one is there.

    Journals of the same destination (their names start with ``temp_prefix``)
    that describe another version of the object are removed with their temp
    files: a changed object restarts from zero.
    """
    found = None
    for journal in _own_journals(directory, temp_prefix):
        part = journal.removesuffix(JOURNAL_SUFFIX) + TEMP_SUFFIX
        if in_use(part, directory):
            continue  # another run is downloading it right now
        recorded = read_journal(journal, directory)
        same = recorded is not None and recorded[0] == identity
        if found is None and recorded is not None and same and _is_file(part, directory):
            found = Resumable(part, recorded[1])
            continue
        if recorded is None or recorded[0].source == identity.source:
            _remove_quietly(directory, part, journal)
    return found


def journal_names(path: Path, *, root: Path | None) -> frozenset[str]:
    """The names of the journals in directory ``path`` (inside ``root``, as for
    :meth:`Directory.open`): the downloads a crashed run may have left there.

    Listed once per directory, so that a download which finds no journal of
    its own destination here can skip the HEAD a resume needs.
    """
    try:
        directory = Directory.open(path, root=root, create=False)
    except (OSError, S3PullError):
        return frozenset()
    with directory:
        return frozenset(_own_journals(directory, ""))


def _own_journals(directory: Directory, temp_prefix: str) -> Iterator[str]:
    try:
        names = directory.names()
    except OSError:
        return
    for name in names:
        if name.startswith(temp_prefix) and name.endswith(JOURNAL_SUFFIX) and is_own_file(name):
            yield name


def stale_names(directory: Directory, older_than: float, *, now: float) -> list[str]:
    """s3pull's own leftovers in ``directory`` untouched for ``older_than``
    seconds and not held by a live download."""
    try:
        names = directory.names()
    except OSError:
        return []
    found = []
    for name in names:
        if not is_own_file(name):
            continue
        try:
            status = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
        except OSError:
            continue
        if now - status.st_mtime < older_than or not stat.S_ISREG(status.st_mode):
            continue
        if in_use(_part_of(name), directory):
            continue
        found.append(name)
    return found


def stale_files(root: Path, older_than: float, *, recursive: bool, now: float) -> list[Path]:
    """:func:`stale_names` of ``root`` (and, if ``recursive``, of every
    directory below it, through no symbolic link), as paths."""
    found = []
    walk = os.walk(root) if recursive else [(str(root), [], [])]
    for path, _, _ in walk:
        try:
            directory = Directory.open(Path(path), root=root, create=False)
        except (OSError, S3PullError):
            continue  # gone, or replaced by a link, since the walk saw it
        with directory:
            found += [directory / name for name in stale_names(directory, older_than, now=now)]
    return found


def _part_of(name: str) -> str:
    """The temp file an s3pull file belongs to (itself, for a temp file)."""
    stem, _, rest = name.rpartition(TEMP_MARKER)
    return f"{stem}{TEMP_MARKER}{rest[:12]}{TEMP_SUFFIX}"


def _is_file(name: str, directory: Directory) -> bool:
    try:
        status = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode)


def _remove_quietly(directory: Directory, *names: str) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=directory.fd)


def remove_stale(path: Path, older_than: float, *, root: Path | None, now: float) -> None:
    """Remove the :func:`stale_names` of directory ``path`` (inside ``root``,
    as for :meth:`Directory.open`). Quietly: it is a courtesy to the user,
    and a download does not depend on it."""
    try:
        directory = Directory.open(path, root=root, create=False)
    except (OSError, S3PullError):
        return
    with directory:
        _remove_quietly(directory, *stale_names(directory, older_than, now=now))
