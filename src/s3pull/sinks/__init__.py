"""Sinks: where downloaded bytes go."""

from ._journal import (
    Identity,
    Journal,
    Resumable,
    find_resumable,
    is_own_file,
    journal_path,
    stale_files,
)
from ._tempfile import TEMP_MARKER, TEMP_SUFFIX, TempFile, local_error, temp_prefix

__all__ = [
    "TEMP_MARKER",
    "TEMP_SUFFIX",
    "Identity",
    "Journal",
    "Resumable",
    "TempFile",
    "find_resumable",
    "is_own_file",
    "journal_path",
    "local_error",
    "stale_files",
    "temp_prefix",
]
