"""The file sink: a temp file next to the destination, renamed into place only
when complete and verified.

The destination therefore always holds either what it held before (or
nothing) or the complete object. The temp file:

- is created next to the destination (same file system, so the final
  ``rename`` is atomic) with a random name, ``O_EXCL`` (never reuse or follow
  someone else's file) and ``O_NOFOLLOW`` (never write through a planted
  symlink);
- is refused up front when the file system has less free space than the
  object needs, and preallocated to the object size, so a full disk is found
  before the first byte is fetched rather than after 9 GB. Not on tmpfs:
  there ``fallocate`` zeroes every page of the object before the first GET
  is sent (0.25 s per GiB on a small VM, on the critical path) and buys no
  layout; the free-space check still refuses what cannot fit;
- is locked (``flock``) while the download owns it, so no other run resumes
  or cleans it (see ``_journal``);
- receives bytes at their offsets with ``os.pwrite``, so parts can arrive in
  any order without buffering;
- is fsynced, renamed over the destination with ``os.replace``, and the
  directory is fsynced so the rename itself survives a power cut. The
  downloader does this on a worker thread (:meth:`TempFile.finish`): on a
  disk each fsync waits milliseconds, which the event loop, busy with other
  downloads, must not.

On any failure or cancellation the temp file is unlinked. Only a crash
leaves it behind, for the next run to resume (``_journal``) or clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import secrets
import stat
import sys
from pathlib import Path

from .._errors import DiskFullError, LocalError

#: Every temp file s3pull creates carries this marker, so cleaning up after a
#: crash only ever touches s3pull's own files.
TEMP_MARKER = ".s3pull-"
TEMP_SUFFIX = ".part"
# Room left for the marker and random token within NAME_MAX (255 bytes).
_MAX_STEM_BYTES = 150
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: ``statfs.f_type`` of tmpfs (linux/magic.h).
_TMPFS_MAGIC = 0x01021994


def local_error(exc: OSError, action: str, path: Path | str) -> LocalError:
    """Translate an OS error on the local side; ENOSPC/EDQUOT become DiskFullError."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        return DiskFullError(f"disk full while {action} {path}: {reason}")
    return LocalError(f"cannot {action} {path}: {reason}")


def temp_prefix(destination: Path) -> str:
    """The start of every temp file name s3pull uses for ``destination``."""
    stem = destination.name.encode()[:_MAX_STEM_BYTES].decode("utf-8", "ignore")
    return f".{stem}{TEMP_MARKER}"


def temp_name(destination: Path) -> Path:
    """A fresh, recognisable temp path next to ``destination``."""
    return destination.with_name(f"{temp_prefix(destination)}{secrets.token_hex(6)}{TEMP_SUFFIX}")


def try_lock(fd: int) -> bool:
    """Take the exclusive lock that marks a temp file as owned by a live download."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class TempFile:
    """A temp file for one download; ``commit()`` renames it over the destination.

    Use as a context manager: leaving the block without ``commit()`` (an
    exception, a cancellation) removes the temp file.

    Example:
        >>> with TempFile(Path("/tmp/out.bin"), size=3) as f:  # doctest: +SKIP
        ...     f.pwrite(b"abc", 0)
        ...     f.commit()
    """

    def __init__(self, destination: Path, size: int, *, resume: Path | None = None) -> None:
        self.destination = destination
        self.size = size
        self.path = temp_name(destination)
        self._resume = resume
        self.fd = -1
        #: True when this is a crashed run's temp file, reopened to be completed.
        self.resumed = False
        self._committed = False
        self._on_tmpfs = False

    def __enter__(self) -> TempFile:
        if self._resume is not None and self._reopen(self._resume):
            return self
        try:
            self.fd = self._create()
        except OSError as exc:
            raise local_error(exc, "create a file in", self.destination.parent) from exc
        try:
            self._check_free_space()
            try_lock(self.fd)  # a brand-new name: nobody else can hold it
            self._on_tmpfs = is_tmpfs(self.fd)
            self._preallocate()
        except BaseException:
            self._discard()
            raise
        return self

    def _create(self) -> int:
        """Create the temp file, and its directory if that is missing (the
        directory is nearly always there: one syscall rather than two)."""
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # 0o666 filtered by the umask, like any file the user creates.
            return os.open(self.path, flags, 0o666)
        except FileNotFoundError:
            self.destination.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o666)

    def _reopen(self, path: Path) -> bool:
        """Take over a crashed run's temp file, if it is still what it should be."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        if not try_lock(fd) or not _is_file_of_size(fd, self.size):
            os.close(fd)
            return False
        self.fd, self.path, self.resumed = fd, path, True
        self._on_tmpfs = is_tmpfs(fd)
        return True

    def _check_free_space(self) -> None:
        """Refuse a download the file system cannot hold, before fetching anything."""
        try:
            fs = os.statvfs(self.destination.parent)
        except OSError:
            return  # cannot tell; preallocation or the writes will
        free = fs.f_bavail * fs.f_frsize
        if self.size > free:
            raise DiskFullError(
                f"not enough space in {self.destination.parent}: the object needs "
                f"{self.size} bytes, {free} are free"
            )

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            self._discard()

    def _preallocate(self) -> None:
        if self.size == 0 or self._on_tmpfs:
            return
        try:
            os.posix_fallocate(self.fd, 0, self.size)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFullError(
                    f"not enough space for {self.size} bytes in {self.destination.parent}"
                ) from exc
            # EOPNOTSUPP / EINVAL: the file system cannot preallocate; writes still work.

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        """Write ``data`` at ``offset`` (all of it: short writes are continued)."""
        try:
            written = os.pwrite(self.fd, data, offset)
            while written < len(data):  # only on odd file systems; keep going
                written += os.pwrite(self.fd, memoryview(data)[written:], offset + written)
        except OSError as exc:
            raise local_error(exc, "write", self.path) from exc

    async def write(self, data: bytes, offset: int) -> None:
        """The downloader's sink interface: ``pwrite``, which never waits.

        A page-cache write is quicker than a hop to a thread would be; a
        disk that cannot keep up shows in the kernel's writeback, not here.
        """
        self.pwrite(data, offset)

    def commit(self, *, mtime: float | None = None) -> None:
        """Set the modification time (if given), fsync, rename over the
        destination, fsync the directory."""
        try:
            if mtime is not None:
                os.utime(self.fd, (mtime, mtime))
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.path, self.destination)
            self._committed = True
        except OSError as exc:
            raise local_error(exc, "finish", self.destination) from exc
        try:
            dir_fd = os.open(self.destination.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass  # some file systems cannot fsync a directory; the data itself is synced

    async def finish(self, *, mtime: float | None = None) -> None:
        """:meth:`commit` without holding up the event loop: on a worker
        thread, except on tmpfs, where fsync returns at once and the hop to a
        thread would cost more than it saves. If the caller is cancelled
        meanwhile, the thread is still waited for: the file is never touched
        after the download has ended (it may have been committed)."""
        if self._on_tmpfs:
            self.commit(mtime=mtime)
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, functools.partial(self.commit, mtime=mtime))
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # seen: the cancellation is what is raised
            raise

    def _discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def is_tmpfs(fd: int) -> bool:
    """True if ``fd`` is on tmpfs (Linux only; False whenever it cannot tell)."""
    if sys.platform != "linux":
        return False
    try:
        libc = _libc()
        # struct statfs starts with f_type (a long) on every Linux ABI; 256
        # bytes is more than the whole struct anywhere.
        buffer = ctypes.create_string_buffer(256)
        if libc.fstatfs(fd, buffer) != 0:
            return False
        return ctypes.c_long.from_buffer(buffer).value == _TMPFS_MAGIC
    except (OSError, AttributeError):
        return False


def _is_file_of_size(fd: int, size: int) -> bool:
    status = os.fstat(fd)
    return stat.S_ISREG(status.st_mode) and status.st_size == size
