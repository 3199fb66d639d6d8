"""What the command line prints: exit codes, JSON lines, human lines."""

from __future__ import annotations

import json

from .._results import EXISTING, ObjectInfo, ObjectOutcome
from .._units import format_size

EXIT_FAILED = 1
EXIT_USAGE = 2


def _info_json(info: ObjectInfo) -> str:
    return json.dumps(info.to_json())


def _print_info(info: ObjectInfo) -> None:
    rows = [
        ("source", info.source),
        ("size", f"{info.size} ({format_size(info.size)})"),
        ("etag", info.etag),
        ("version", info.version_id),
        ("last modified", info.last_modified.isoformat() if info.last_modified else None),
        ("content type", info.content_type),
        ("content encoding", info.content_encoding),
        ("encryption", info.encryption),
    ]
    rows += [(f"checksum {name}", value) for name, value in info.checksums.items()]
    if info.checksum_type:
        rows.append(("checksum type", info.checksum_type))
    for name, value in rows:
        if value is not None:
            print(f"{name:<17} {value}")


def _outcome_json(outcome: ObjectOutcome) -> str:
    """The ``--json`` line of every command: one object's outcome."""
    return json.dumps(outcome.to_json())


def _planned_line(outcome: ObjectOutcome) -> str:
    """One object of a dry run, for the terminal."""
    size = format_size(outcome.size) if outcome.size is not None else "?"
    if outcome.source.endswith("/"):  # a directory marker
        return f"(dry run) {outcome.source} -> {outcome.path} (directory)"
    if outcome.status == EXISTING:
        return f"(dry run) keep {outcome.path} ({size}): already there"
    return f"(dry run) {outcome.source} -> {outcome.path} ({size})"
