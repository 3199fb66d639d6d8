"""What the command line prints: exit codes, JSON lines, human lines."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .._results import EXISTING, DownloadResult, ObjectInfo, ObjectOutcome
from .._units import format_size

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _result_json(result: DownloadResult) -> str:
    fields = asdict(result)
    fields["path"] = str(result.path)
    return json.dumps(fields)


def _info_json(info: ObjectInfo) -> str:
    fields = asdict(info)
    fields["last_modified"] = info.last_modified.isoformat() if info.last_modified else None
    return json.dumps(fields)


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
    fields: dict[str, Any] = {
        "source": outcome.source,
        "path": str(outcome.path) if outcome.path is not None else None,
        "status": outcome.status,
        "bytes": outcome.bytes,
    }
    if outcome.result is not None:
        fields.update(
            seconds=outcome.result.seconds,
            attempts=outcome.result.attempts,
            etag=outcome.result.etag,
            version_id=outcome.result.version_id,
            verified=outcome.result.verified,
            resumed=outcome.result.resumed,
        )
    if outcome.size is not None:
        fields["size"] = outcome.size
    if outcome.error is not None:
        fields.update(error=type(outcome.error).__name__, message=str(outcome.error))
    return json.dumps(fields)


def _planned_line(outcome: ObjectOutcome) -> str:
    """One object of a dry run, for the terminal."""
    size = format_size(outcome.size) if outcome.size is not None else "?"
    if outcome.source.endswith("/"):  # a directory marker
        return f"(dry run) {outcome.source} -> {outcome.path} (directory)"
    if outcome.status == EXISTING:
        return f"(dry run) keep {outcome.path} ({size}): already there"
    return f"(dry run) {outcome.source} -> {outcome.path} ({size})"
