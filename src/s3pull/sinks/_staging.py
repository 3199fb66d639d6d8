"""Staging directories: files that must appear together, or not at all.

A PDF split writes every part into a private directory inside the
destination, then renames them into place once all are complete. The
directory is locked (``flock`` on its descriptor) for as long as its owner
runs, so :func:`stale_staging` (``s3pull clean``) can tell one that a
killed run left behind from one in use, as it does for temp files.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from types import TracebackType

from ._directory import Directory, local_error
from ._tempfile import try_lock

#: The name every staging directory starts with.
STAGING_PREFIX = ".s3pull-split-"


class StagingDirectory:
    """A new private, locked directory in ``parent`` (made if missing),
    removed with whatever is still in it when the block ends.

    Raises:
        LocalError: ``parent`` cannot be made or written.
    """

    def __init__(self, parent: Path) -> None:
        # Imported here: only documents stage, and shutil and tempfile are
        # ~3 ms of every other process's start.
        import tempfile

        Directory.open(parent).close()  # made, or the LocalError of why not
        try:
            self.path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise local_error(exc, "create a directory in", parent) from exc
        try_lock(self._fd)  # new and private: nobody else can hold it

    def __enter__(self) -> StagingDirectory:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the directory and what it holds (idempotent)."""
        if self._fd >= 0:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)  # the lock goes with it
            self._fd = -1


def stale_staging(root: Path, older_than: float, *, now: float) -> list[Path]:
    """Staging directories under ``root`` (through no symbolic link) that no
    live run holds and that are unchanged for ``older_than`` seconds."""
    found = []
    for path, directories, _ in os.walk(root):
        for name in directories:
            if not name.startswith(STAGING_PREFIX):
                continue
            candidate = Path(path) / name
            with contextlib.suppress(OSError):
                fd = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    status = os.fstat(fd)
                    if (
                        stat.S_ISDIR(status.st_mode)
                        and now - status.st_mtime >= older_than
                        and try_lock(fd)
                    ):
                        found.append(candidate)
                finally:
                    os.close(fd)  # a lock taken to look is given back
        directories[:] = [name for name in directories if not name.startswith(STAGING_PREFIX)]
    return found
