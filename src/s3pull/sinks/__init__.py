"""Sinks: where downloaded bytes land, and nothing partial is ever left.

A temp file next to the destination (random name, ``O_EXCL|O_NOFOLLOW``)
written at offsets with ``pwrite``, fsynced and renamed over it; the resume
journal of its durable parts; the directory handle through which every name
is opened, renamed and removed without following a link; the leftovers a
crashed run left (``stale_files``, ``remove_stale``, ``stale_staging``);
the staging directory of files that appear together (``StagingDirectory``). Every file s3pull
writes goes through here: objects, JSONL, text.

May import: only the shared modules (``_errors``): never planning,
transport, scheduling, consumers or the clients.

Imported by: scheduling, the clients, the CLI, :func:`s3pull.clean` and
``s3pull.testing`` (to read a journal), through this module (import-linter
checks both, see ``[tool.importlinter]`` in pyproject.toml).
"""

from ._directory import Directory, local_error
from ._journal import (
    Identity,
    Journal,
    Resumable,
    find_resumable,
    is_own_file,
    journal_name,
    journal_names,
    read_journal,
    remove_stale,
    stale_files,
    stale_names,
)
from ._staging import STAGING_PREFIX, StagingDirectory, stale_staging
from ._tempfile import (
    TEMP_MARKER,
    TEMP_SUFFIX,
    TempFile,
    atomic_file,
    resolve_destination,
    temp_prefix,
)

__all__ = [
    "STAGING_PREFIX",
    "TEMP_MARKER",
    "TEMP_SUFFIX",
    "Directory",
    "Identity",
    "Journal",
    "Resumable",
    "StagingDirectory",
    "TempFile",
    "atomic_file",
    "find_resumable",
    "is_own_file",
    "journal_name",
    "journal_names",
    "local_error",
    "read_journal",
    "remove_stale",
    "resolve_destination",
    "stale_files",
    "stale_names",
    "stale_staging",
    "temp_prefix",
]
