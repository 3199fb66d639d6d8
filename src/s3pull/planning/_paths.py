"""Local paths: which file a source lands in. Pure code."""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import UnsafePathError

#: Longest file name most file systems accept (NAME_MAX, in bytes).
NAME_MAX = 255


def safe_name(name: str, *, source: str) -> str:
    """Check that ``name`` is usable as one file name inside a directory.

    Refuses empty names, ``.``/``..``, separators, NUL and control
    characters, and names longer than 255 bytes.

    Example:
        >>> safe_name("report.pdf", source="s3://b/report.pdf")
        'report.pdf'
    """
    problem = None
    if name in ("", ".", ".."):
        problem = f"cannot use {name!r} as a file name"
    elif "/" in name or "\\" in name:
        problem = "a file name must not contain path separators"
    elif any(ord(char) < 32 or ord(char) == 127 for char in name):
        problem = "a file name must not contain NUL or control characters"
    elif len(os.fsencode(name)) > NAME_MAX:
        problem = f"the file name is longer than {NAME_MAX} bytes"
    if problem is not None:
        raise UnsafePathError(problem, source=source)
    return name


def destination_file(source_name: str, destination: Path, *, is_dir: bool, source: str) -> Path:
    """The file to write: ``destination`` itself, or ``destination/source_name``
    when ``destination`` is a directory (or ends with a separator), as in ``cp``.

    Example:
        >>> destination_file("a.bin", Path("out"), is_dir=True, source="s3://b/a.bin")
        PosixPath('out/a.bin')
    """
    if is_dir:
        return destination / safe_name(source_name, source=source)
    return destination
