"""The directory one download's files are made in, held open by a descriptor.

Every file operation of a download (create the temp file, write its journal,
rename it over the destination, fsync the directory, clean a crashed run's
leftovers) names a file *in this descriptor*, never a path from the root of
the file system. A directory renamed or replaced by a symbolic link while the
download runs therefore cannot redirect any of them elsewhere.

A batch opens each directory *inside* its destination root
(:meth:`Directory.open` with ``root``): the walk from the root goes one
component at a time with ``O_NOFOLLOW``, so a symbolic link below the root is
refused (:class:`UnsafePathError`), not followed. Keys cannot name a path
outside the destination (``planning._paths``); this keeps a link that
someone else placed inside it from doing so either. ``rsync`` and GNU
``tar`` do not follow such links by default either (``--keep-dirlinks``,
``--keep-directory-symlink`` make them); they replace the link with a
directory, where s3pull refuses the key and leaves the link alone. The
root itself, and the directory of a file the caller named, are the
caller's to choose and may be links.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .._errors import DiskFullError, LocalError, UnsafePathError

_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def local_error(exc: OSError, action: str, path: Path | str) -> LocalError:
    """Translate an OS error on the local side; ENOSPC/EDQUOT become DiskFullError."""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_FULL:
        return DiskFullError(f"disk full while {action} {path}: {reason}")
    return LocalError(f"cannot {action} {path}: {reason}")


class Directory:
    """An open directory: ``fd`` names it, ``path`` only says where it was.

    Use :meth:`open`; close it (or use it as a context manager) when the
    download is over.
    """

    __slots__ = ("fd", "path")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: Path, *, root: Path | None = None, create: bool = True) -> Directory:
        """Open ``path``, creating it and its parents if missing and ``create``.

        Args:
            path: the directory.
            root: a directory ``path`` is inside (``root`` itself, or below
                it): no component of ``path`` under ``root`` may be a
                symbolic link.
            create: make what is missing; otherwise a missing directory
                raises ``FileNotFoundError``.

        Raises:
            UnsafePathError: a component under ``root`` is a symbolic link.
            LocalError: the directory cannot be opened or created.
            FileNotFoundError: it does not exist and ``create`` is False.
        """
        start, below = (path, ()) if root is None else (root, _below(path, root))
        walked = 0  # components opened below ``start``
        try:
            fd = _open_or_make(start, create)
            for name in below:
                fd = _step(fd, name, create)
                walked += 1
        except _LinkFound as found:
            # The path is built only here: pathlib would cost more than the
            # system calls of the walk it describes.
            shown = start.joinpath(*below[: walked + 1])
            raise UnsafePathError(
                f"{shown} is a symbolic link inside the destination: not followed"
            ) from found.__cause__
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not create:
                raise
            raise local_error(exc, "open the directory", path) from exc
        return cls(path, fd)

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __truediv__(self, name: str) -> Path:
        """The path of ``name`` in this directory, for messages and results."""
        return self.path / name

    def names(self) -> list[str]:
        return os.listdir(self.fd)

    def fsync(self) -> None:
        """Make renames in this directory durable (quietly skipped where a file
        system cannot fsync a directory: the data itself was synced)."""
        try:
            os.fsync(self.fd)
        except OSError:
            pass


def _below(path: Path, root: Path) -> tuple[str, ...]:
    """The components of ``path`` under ``root``: ``path.relative_to(root).parts``
    without parsing ``root`` again for every file of a batch.

    Raises:
        ValueError: ``path`` is not ``root`` or below it.
    """
    parts, top = path.parts, root.parts
    if parts[: len(top)] != top:
        raise ValueError(f"{path} is not in {root}")
    return parts[len(top) :]


def _open_or_make(path: Path, create: bool) -> int:
    """Open ``path`` following links (the caller's own choice), making it if missing."""
    try:
        return os.open(path, _FLAGS)
    except FileNotFoundError:
        if not create:
            raise
    path.mkdir(parents=True, exist_ok=True)
    return os.open(path, _FLAGS)


class _LinkFound(Exception):
    """A component of the walk is a symbolic link (its path is told above)."""


def _step(parent: int, name: str, create: bool) -> int:
    """Open ``name`` in ``parent``, never through a link; closes ``parent``."""
    try:
        try:
            return os.open(name, _FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        try:
            os.mkdir(name, 0o777, dir_fd=parent)  # modes from the umask, as mkdir(1)
        except FileExistsError:
            pass  # made meanwhile (another download into the same directory)
        return os.open(name, _FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        # Linux says ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW,
        # others ELOOP; either way, only a link is refused as unsafe.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, parent):
            raise _LinkFound from exc
        raise
    finally:
        os.close(parent)


def _is_link(name: str, parent: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False
