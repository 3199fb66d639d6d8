"""``s3pull.clean``: remove what crashed downloads left in a directory tree.

A download that is killed outright (SIGKILL, an OOM kill, a power cut)
cannot remove its temp file (``.NAME.s3pull-XXXX.part``) or its resume
journal, nor a PDF split its staging directory (``.s3pull-split-XXXX``).
The next download into that directory removes temp files and journals
older than ``TransferConfig.stale_age``; this removes all three on demand,
at any age, in a whole tree. Only s3pull's own names are considered, never
through a symbolic link, and never a file or directory a running download
or split (in any process) holds locked.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from ._errors import ConfigError
from .sinks import stale_files, stale_staging

__all__ = ["clean"]

logger = logging.getLogger("s3pull")


def clean(
    directory: str | os.PathLike[str], *, older_than: float = 0.0, dry_run: bool = False
) -> list[Path]:
    """Remove s3pull's temp files, journals and split staging directories
    under ``directory``, recursively.

    Args:
        directory: the tree to clean, e.g. a ``download_prefix`` destination.
        older_than: only files untouched for at least this many seconds (0:
            any age). A file a live download holds is kept whatever its age.
        dry_run: find the files but remove none.

    Returns:
        The files and staging directories removed (with ``dry_run``, the
        ones that would be). One that cannot be removed is logged as a
        warning on the ``s3pull`` logger and left out.

    Raises:
        ConfigError: ``directory`` is not a directory, or ``older_than`` is
            negative.

    Example:
        >>> import s3pull
        >>> for path in s3pull.clean("/data/", older_than=3600):  # doctest: +SKIP
        ...     print("removed", path)
        removed /data/logs/.2024-01-01.gz.s3pull-3f9a2c1b7e4d.part
    """
    if not older_than >= 0:  # also refuses NaN
        raise ConfigError(f"older_than must be >= 0 seconds, got {older_than!r}")
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"not a directory: {directory}")
    removed = []
    now = time.time()
    stagings = stale_staging(root, older_than, now=now)
    for staging in stagings:
        if not dry_run:
            try:
                shutil.rmtree(staging)
            except OSError as exc:
                logger.warning("cannot remove %s: %s", staging, exc.strerror)
                continue
        removed.append(staging)
    for path in stale_files(root, older_than, recursive=True, now=now):
        if any(staging in path.parents for staging in stagings):
            continue  # goes with its staging directory (a dry run lists that alone)
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                logger.warning("cannot remove %s: %s", path, exc.strerror)
                continue
        removed.append(path)
    return removed
