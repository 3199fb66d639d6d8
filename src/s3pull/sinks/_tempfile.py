"""The file sink: a temp file next to the destination, renamed into place only
when complete and verified.

The destination therefore always holds either what it held before (or
nothing) or the complete object. The temp file:

- is created next to the destination (same file system, so the final
  ``rename`` is atomic) with a random name, ``O_EXCL`` (never reuse or follow
  someone else's file) and ``O_NOFOLLOW`` (never write through a planted
  symlink), in the download's open :class:`Directory`: the create, the
  rename and the clean-up all name the file in that descriptor;
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

The rename replaces a regular file, or a symbolic link (itself, not its
target), and nothing else: a device, a FIFO, a socket or a directory at the
destination is refused before anything is fetched. A caller that names such
a file (``/dev/null``, a named pipe) wants it written, not replaced; the
client sees that first (:func:`resolve_destination`) and writes it in order.

Files s3pull writes that are not downloads (JSON lines, text) take the same
path through :func:`atomic_file`: their size is not known in advance, so they
are appended to, and nothing is preallocated.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .._errors import DiskFullError, LocalError
from ._directory import DISK_FULL, Directory, local_error

#: Every temp file s3pull creates carries this marker, so cleaning up after a
#: crash only ever touches s3pull's own files.
TEMP_MARKER = ".s3pull-"
TEMP_SUFFIX = ".part"
# Room left for the marker and random token within NAME_MAX (255 bytes).
_MAX_STEM_BYTES = 150
#: ``statfs.f_type`` of tmpfs (linux/magic.h).
_TMPFS_MAGIC = 0x01021994


def temp_prefix(destination: Path) -> str:
    """The start of every temp file name s3pull uses for ``destination``."""
    stem = destination.name.encode()[:_MAX_STEM_BYTES].decode("utf-8", "ignore")
    return f".{stem}{TEMP_MARKER}"


def temp_name(destination: Path) -> str:
    """A fresh, recognisable temp file name for ``destination``, in its directory."""
    # secrets.token_hex(6), without its two layers of Python calls.
    return f"{temp_prefix(destination)}{os.urandom(6).hex()}{TEMP_SUFFIX}"


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

    Args:
        destination: the file to replace (for its name, and for messages).
        size: the object's size.
        directory: the open directory of ``destination``; by default its
            parent is opened (and created if missing) for the file's life.
        resume: the name of a crashed run's temp file in that directory, to
            take over if it is still what it should be.

    Example:
        >>> with TempFile(Path("/tmp/out.bin"), size=3) as f:  # doctest: +SKIP
        ...     f.pwrite(b"abc", 0)
        ...     f.commit()
    """

    def __init__(
        self,
        destination: Path,
        size: int,
        *,
        directory: Directory | None = None,
        resume: str | None = None,
    ) -> None:
        self.destination = destination
        self.size = size
        self.name = temp_name(destination)
        self._directory = directory
        self._owns_directory = directory is None
        self._resume = resume
        self.fd = -1
        #: True when this is a crashed run's temp file, reopened to be completed.
        self.resumed = False
        self._committed = False
        self._on_tmpfs = False
        self._end = 0

    @property
    def directory(self) -> Directory:
        assert self._directory is not None, "use TempFile as a context manager"
        return self._directory

    @property
    def path(self) -> Path:
        """Where the temp file is (for messages: operations use the directory)."""
        return self.destination.parent / self.name

    def __enter__(self) -> TempFile:
        return self.open()

    def open(self) -> TempFile:
        """Create (or reopen) the file; :meth:`close` must follow, as the
        ``with`` block's end does."""
        if self._directory is None:
            self._directory = Directory.open(self.destination.parent)
        try:
            return self._enter()
        except BaseException:
            self._close_directory()
            raise

    def _enter(self) -> TempFile:
        self._check_replaceable()
        if self._resume is not None and self._reopen(self._resume):
            return self
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # 0o666 filtered by the umask, like any file the user creates.
            self.fd = os.open(self.name, flags, 0o666, dir_fd=self.directory.fd)
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

    def _reopen(self, name: str) -> bool:
        """Take over a crashed run's temp file, if it is still what it should be."""
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.directory.fd)
        except OSError:
            return False
        if not try_lock(fd) or not _is_file_of_size(fd, self.size):
            os.close(fd)
            return False
        self.fd, self.name, self.resumed = fd, name, True
        self._on_tmpfs = is_tmpfs(fd)
        return True

    def _check_replaceable(self) -> None:
        """Refuse to rename over anything but a regular file or a link (see above)."""
        try:
            status = os.stat(self.destination.name, dir_fd=self.directory.fd, follow_symlinks=False)
        except OSError:
            return  # nothing there yet (or unreadable: the rename will say)
        if not stat.S_ISREG(status.st_mode) and not stat.S_ISLNK(status.st_mode):
            raise LocalError(
                f"{self.destination} is {file_kind(status.st_mode)}, not a regular file: "
                "not replaced"
            )

    def _check_free_space(self) -> None:
        """Refuse a download the file system cannot hold, before fetching anything."""
        try:
            fs = os.fstatvfs(self.fd)
        except OSError:
            return  # cannot tell; preallocation or the writes will
        free = fs.f_bavail * fs.f_frsize
        if self.size > free:
            raise DiskFullError(
                f"not enough space in {self.destination.parent}: the object needs "
                f"{self.size} bytes, {free} are free"
            )

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the file unless it was committed; close the directory if it
        was opened for this file."""
        try:
            if not self._committed:
                self._discard()
        finally:
            self._close_directory()

    def _close_directory(self) -> None:
        if self._owns_directory and self._directory is not None:
            self._directory.close()
            self._directory = None

    def _preallocate(self) -> None:
        if self.size == 0 or self._on_tmpfs:
            return
        code = fallocate(self.fd, self.size)
        if code in DISK_FULL:
            raise DiskFullError(
                f"not enough space for {self.size} bytes in {self.destination.parent}"
            )
        # Any other failure (EOPNOTSUPP: NFS, FUSE, ext2...): the file system
        # cannot preallocate; the writes still work.

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        """Write ``data`` at ``offset`` (all of it: short writes are continued)."""
        try:
            written = os.pwrite(self.fd, data, offset)
            while written < len(data):  # only on odd file systems; keep going
                written += os.pwrite(self.fd, memoryview(data)[written:], offset + written)
        except OSError as exc:
            raise local_error(exc, "write", self.path) from exc

    def append(self, data: bytes) -> None:
        """Write ``data`` after everything appended so far (see :func:`atomic_file`)."""
        self.pwrite(data, self._end)
        self._end += len(data)

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
            fd = self.directory.fd
            os.replace(self.name, self.destination.name, src_dir_fd=fd, dst_dir_fd=fd)
            self._committed = True
        except OSError as exc:
            raise local_error(exc, "finish", self.destination) from exc
        self.directory.fsync()

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
            os.unlink(self.name, dir_fd=self.directory.fd)
        except FileNotFoundError:
            pass


def resolve_destination(path: Path) -> tuple[Path, bool]:
    """What a download to the file the caller named ``path`` writes:
    ``(file, in_place)``.

    - Nothing there yet, or a regular file: ``path``, replaced atomically.
    - A symbolic link: followed, as ``cp`` does; its target (made if it does
      not exist yet) is replaced atomically and the link stays a link.
    - A character or block device or a FIFO (``/dev/null``, ``/dev/stdout``,
      a named pipe): ``in_place``, to be opened and written in order. There
      is no file to replace, and renaming over it would destroy it.

    Raises:
        LocalError: ``path`` is a socket (nothing to open and write), or
            cannot be looked at.
    """
    try:
        mode = os.stat(path).st_mode  # through links: what a write would reach
    except FileNotFoundError:
        mode = None  # nothing there, or a dangling link (followed below)
    except OSError as exc:
        raise local_error(exc, "look at", path) from exc
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        return path, True
    if mode is not None and stat.S_ISSOCK(mode):
        raise LocalError(f"{path} is a socket: s3pull writes files, devices and FIFOs")
    if path.is_symlink():
        return Path(os.path.realpath(path)), False
    return path, False


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, for messages."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a regular file")


@contextlib.contextmanager
def atomic_file(destination: Path) -> Iterator[TempFile]:
    """Write a file of a size not known in advance (JSON lines, text) as
    downloads are written: :meth:`TempFile.append` to the file this yields;
    it replaces ``destination`` when the block ends normally, and is removed
    when it ends with an exception (a cancellation, Ctrl-C included).

    Example:
        >>> with atomic_file(Path("/tmp/out.jsonl")) as f:  # doctest: +SKIP
        ...     f.append(b'{"key": "a"}\\n')
    """
    with TempFile(destination, 0) as file:
        yield file
        file.commit()


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def fallocate(fd: int, size: int) -> int:
    """Reserve ``size`` bytes for ``fd`` with Linux's ``fallocate(2)``; 0, or
    the errno of the failure (``ENOTSUP`` where it cannot tell).

    Not ``os.posix_fallocate``: where the file system has no ``fallocate``
    (NFS before 4.2, as EFS serves; most FUSE file systems; ext2), glibc
    emulates it by writing a byte into every block of the file, here on the
    event loop, and leaves nothing sparse. The system call says EOPNOTSUPP
    instead, and the download goes on without preallocating.
    """
    call = _fallocate64()
    if call is None:
        return errno.ENOTSUP
    if call(fd, 0, 0, size) == 0:
        return 0
    return ctypes.get_errno()


@functools.cache
def _fallocate64() -> Callable[[int, int, int, int], int] | None:
    """libc's fallocate with a 64-bit offset and length, if there is one."""
    if sys.platform != "linux":
        return None
    # glibc has fallocate64; musl >= 1.2.4 has no *64 names, and its
    # fallocate takes a 64-bit off_t wherever a long is 64 bits.
    names = ["fallocate64"] + (["fallocate"] if ctypes.sizeof(ctypes.c_long) == 8 else [])
    for name in names:
        call = getattr(_libc(), name, None)
        if call is not None:
            call.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
            call.restype = ctypes.c_int
            return call  # type: ignore[no-any-return]
    return None


#: is_tmpfs's answers, per device (``st_dev``): a file system is asked once,
#: not once per file. A device number freed by an unmount may come back for
#: another file system; the answer only decides where fsync runs and
#: whether to preallocate, never whether a file is written safely.
_TMPFS_BY_DEVICE: dict[int, bool] = {}


def is_tmpfs(fd: int) -> bool:
    """True if ``fd`` is on tmpfs (Linux only; False whenever it cannot tell)."""
    if sys.platform != "linux":
        return False
    try:
        device = os.fstat(fd).st_dev  # one system call; ctypes' fstatfs costs ~1 us more
    except OSError:
        return False
    known = _TMPFS_BY_DEVICE.get(device)
    if known is None:
        known = _TMPFS_BY_DEVICE[device] = _statfs_is_tmpfs(fd)
    return known


def _statfs_is_tmpfs(fd: int) -> bool:
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
