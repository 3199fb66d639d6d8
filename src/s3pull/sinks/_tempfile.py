"""The file sink: a temp file next to the destination, renamed into place only
when complete and verified.

The destination therefore always holds either what it held before (or
nothing) or the complete object. The temp file:

- is created next to the destination (same file system, so the final
  ``rename`` is atomic) with a random name, ``O_EXCL`` (never reuse or follow
  someone else's file) and ``O_NOFOLLOW`` (never write through a planted
  symlink);
- is preallocated to the object size, so a full disk is found before the
  first byte is fetched rather than after 9 GB;
- receives bytes at their offsets with ``os.pwrite``, so parts can arrive in
  any order without buffering;
- is fsynced, renamed over the destination with ``os.replace``, and the
  directory is fsynced so the rename itself survives a power cut.

On any failure or cancellation the temp file is unlinked.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from .._errors import DiskFullError, LocalError

#: Every temp file s3pull creates carries this marker, so cleaning up after a
#: crash only ever touches s3pull's own files.
TEMP_MARKER = ".s3pull-"
TEMP_SUFFIX = ".part"
# Room left for the marker and random token within NAME_MAX (255 bytes).
_MAX_STEM_BYTES = 150
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def local_error(exc: OSError, action: str, path: Path | str) -> LocalError:
    """Translate an OS error on the local side; ENOSPC/EDQUOT become DiskFullError."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        return DiskFullError(f"disk full while {action} {path}: {reason}")
    return LocalError(f"cannot {action} {path}: {reason}")


def temp_name(destination: Path) -> Path:
    """A fresh, recognisable temp path next to ``destination``."""
    stem = destination.name.encode()[:_MAX_STEM_BYTES].decode("utf-8", "ignore")
    return destination.with_name(f".{stem}{TEMP_MARKER}{secrets.token_hex(6)}{TEMP_SUFFIX}")


class TempFile:
    """A temp file for one download; ``commit()`` renames it over the destination.

    Use as a context manager: leaving the block without ``commit()`` (an
    exception, a cancellation) removes the temp file.

    Example:
        >>> with TempFile(Path("/tmp/out.bin"), size=3) as f:  # doctest: +SKIP
        ...     f.pwrite(b"abc", 0)
        ...     f.commit()
    """

    def __init__(self, destination: Path, size: int) -> None:
        self.destination = destination
        self.size = size
        self.path = temp_name(destination)
        self.fd = -1
        self._committed = False

    def __enter__(self) -> TempFile:
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.destination.parent.mkdir(parents=True, exist_ok=True)
            # 0o666 filtered by the umask, like any file the user creates.
            self.fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise local_error(exc, "create a file in", self.destination.parent) from exc
        try:
            self._preallocate()
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            self._discard()

    def _preallocate(self) -> None:
        if self.size == 0:
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

    def commit(self) -> None:
        """fsync, rename over the destination, fsync the directory."""
        try:
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

    def _discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
