"""Sinks: where downloaded bytes go."""

from ._directory import Directory, local_error
from ._journal import (
    Identity,
    Journal,
    Resumable,
    find_resumable,
    is_own_file,
    journal_name,
    journal_names,
    remove_stale,
    stale_files,
    stale_names,
)
from ._tempfile import (
    TEMP_MARKER,
    TEMP_SUFFIX,
    TempFile,
    atomic_file,
    resolve_destination,
    temp_prefix,
)

__all__ = [
    "TEMP_MARKER",
    "TEMP_SUFFIX",
    "Directory",
    "Identity",
    "Journal",
    "Resumable",
    "TempFile",
    "atomic_file",
    "find_resumable",
    "is_own_file",
    "journal_name",
    "journal_names",
    "local_error",
    "remove_stale",
    "resolve_destination",
    "stale_files",
    "stale_names",
    "temp_prefix",
]
