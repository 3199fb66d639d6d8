"""``s3pull.clean``: remove what crashed downloads left in a directory tree.

A download that is killed outright (SIGKILL, an OOM kill, a power cut)
cannot remove its temp file (``.NAME.s3pull-XXXX.part``) or its resume
journal. The next download into that directory removes leftovers older than
``TransferConfig.stale_age``; this removes them on demand, at any age, in a
whole tree. Only s3pull's own file names are considered, never through a
symbolic link, and never a file a running download (in any process) holds
locked.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ._errors import ConfigError
from .sinks import stale_files

__all__ = ["clean"]

logger = logging.getLogger("s3pull")


def clean(
    directory: str | os.PathLike[str], *, older_than: float = 0.0, dry_run: bool = False
) -> list[Path]:
    """Remove s3pull's temp files and journals under ``directory``, recursively.

    Args:
        directory: the tree to clean, e.g. a ``download_prefix`` destination.
        older_than: only files untouched for at least this many seconds (0:
            any age). A file a live download holds is kept whatever its age.
        dry_run: find the files but remove none.

    Returns:
        The files removed (with ``dry_run``, the ones that would be). A file
        that cannot be removed is logged as a warning on the ``s3pull``
        logger and left out.

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
    for path in stale_files(root, older_than, recursive=True, now=time.time()):
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                logger.warning("cannot remove %s: %s", path, exc.strerror)
                continue
        removed.append(path)
    return removed
