"""Frozen results: what a download or a stat returns.

Each result has a JSON form, ``to_json()`` (a dict of JSON types) and
``from_json()``: the command line prints exactly these, and a result that
crosses a process boundary travels as one. An error in an outcome becomes
its type name, its message and the fields it carries (source, range,
attempts, status, code...), never a credential: sources are redacted.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _errors
from ._units import format_size

_MD5_ETAG = re.compile(r'^"?[0-9a-fA-F]{32}"?$')


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What the store says about an object, without downloading it.

    Attributes:
        source: the redacted source URL.
        size: bytes.
        etag: the entity tag, quotes included (``'"9b2c..."'``), if any.
        version_id: the S3 version, if the bucket is versioned.
        last_modified: when the object was written.
        content_type: the stored Content-Type.
        content_encoding: the stored Content-Encoding (the bytes are never decoded).
        checksums: S3 additional checksums, ``{"CRC32C": "base64..."}``.
        checksum_type: ``"FULL_OBJECT"`` or ``"COMPOSITE"`` (the latter are
            checksums of part checksums and cannot be checked against the bytes).
        encryption: the server-side encryption (``"AES256"``, ``"aws:kms"``...).
        is_s3: True when the answer came from S3 (or an S3-compatible store), so
            a 32-hex ETag of an unencrypted object is the MD5 of its bytes.
    """

    source: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    last_modified: datetime | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    checksum_type: str | None = None
    encryption: str | None = None
    is_s3: bool = False

    @property
    def md5(self) -> str | None:
        """The MD5 hex digest the ETag reveals, or None when the ETag is not an MD5.

        Multipart ETags (``"...-3"``), SSE-KMS and SSE-C objects and non-S3
        servers have ETags that are not the MD5 of the bytes.
        """
        if not self.is_s3 or self.etag is None or not _MD5_ETAG.match(self.etag):
            return None
        if self.encryption not in (None, "AES256"):
            return None
        return self.etag.strip('"').lower()

    def to_json(self) -> dict[str, Any]:
        """The JSON form: every field, ``last_modified`` in ISO 8601."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["checksums"] = dict(self.checksums)
        data["last_modified"] = self.last_modified.isoformat() if self.last_modified else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObjectInfo:
        """The inverse of :meth:`to_json`."""
        modified = data.get("last_modified")
        return cls(
            **{**data, "last_modified": datetime.fromisoformat(modified) if modified else None}
        )

    def full_object_checksum(self) -> tuple[str, str] | None:
        """``(algorithm, base64 value)`` of a checksum over the whole object, if any."""
        if self.checksum_type == "COMPOSITE":
            return None
        for algorithm, value in self.checksums.items():
            if "-" not in value:  # "abc=-3" is a composite checksum of 3 parts
                return algorithm, value
        return None


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """One finished download.

    Attributes:
        source: the redacted source URL.
        path: where the verified file now is.
        bytes: the object size.
        seconds: wall time from the first request to the rename.
        attempts: requests for the bytes, retries included: one GET per part,
            plus one per retry (a HEAD that succeeded at once is not counted).
        etag: the ETag every part was pinned to.
        version_id: the S3 version downloaded, if any.
        verified: what was checked beyond size and Content-Range, e.g.
            ``"CRC64NVME"``, ``"MD5"``, or None.
        resumed: bytes kept from an earlier run that crashed (not fetched again).
    """

    source: str
    path: Path
    bytes: int
    seconds: float
    attempts: int
    etag: str | None = None
    version_id: str | None = None
    verified: str | None = None
    resumed: int = 0

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON form: every field, ``path`` as a string."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DownloadResult:
        """The inverse of :meth:`to_json`."""
        return cls(**{**data, "path": Path(data["path"])})


def error_to_json(error: BaseException) -> dict[str, Any]:
    """An error as JSON: ``type``, ``message`` and the fields it carries."""
    if not isinstance(error, _errors.S3PullError):
        return {"type": type(error).__name__, "message": str(error)}
    data: dict[str, Any] = {"type": type(error).__name__, **vars(error)}
    if error.range is not None:
        data["range"] = list(error.range)
    return data


def error_from_json(data: dict[str, Any]) -> Exception:
    """The inverse of :func:`error_to_json`: an s3pull error of the same type
    and fields (any other type comes back as an :class:`S3PullError`)."""
    fields_ = dict(data)
    name = fields_.pop("type")
    cls = getattr(_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, _errors.S3PullError)):
        cls = _errors.S3PullError
    if fields_.get("range") is not None:
        fields_["range"] = tuple(fields_["range"])
    error = cls(fields_.pop("message"))
    vars(error).update(fields_)
    return error


#: ``ObjectOutcome.status`` values.
DOWNLOADED = "downloaded"
EXISTING = "existing"
DIRECTORY = "directory"
NONCURRENT = "noncurrent"
PLANNED = "planned"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ObjectOutcome:
    """What happened to one object of a batch.

    Attributes:
        source: the redacted source URL.
        path: the local file (or directory, for a directory-marker key); None
            when the key was refused before a path was chosen.
        status: ``"downloaded"``, ``"existing"`` (``skip_existing`` found it
            already there), ``"directory"`` (a directory marker, created),
            ``"noncurrent"`` (an inventory record of a noncurrent version or
            of a delete marker: nothing to download), ``"planned"`` (a dry
            run would download it) or ``"failed"``.
        result: the :class:`DownloadResult` when downloaded.
        error: the error when failed: a transfer error, an ``UnsafePathError``
            (the key was refused), or a ``CircuitOpenError`` (not attempted).
        size: in a dry run, the object's size as listed or as a HEAD told.
    """

    source: str
    path: Path | None
    status: str
    result: DownloadResult | None = None
    error: Exception | None = None
    size: int | None = None

    @property
    def bytes(self) -> int:
        return self.result.bytes if self.result is not None else 0

    def to_json(self) -> dict[str, Any]:
        """The JSON form: one flat object, the same for every command.

        ``source``, ``path``, ``status``, ``bytes``, ``size``, then the
        download's ``seconds``, ``attempts``, ``etag``, ``version_id``,
        ``verified`` and ``resumed`` (null unless downloaded), and ``error``
        (null, or ``{"type", "message", "source", "range", "attempts",
        "status", "code", ...}``).
        """
        data: dict[str, Any] = {
            "source": self.source,
            "path": str(self.path) if self.path is not None else None,
            "status": self.status,
            "bytes": self.bytes,
            "size": self.size,
        }
        for name in _RESULT_FIELDS:
            data[name] = getattr(self.result, name) if self.result is not None else None
        data["error"] = error_to_json(self.error) if self.error is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObjectOutcome:
        """The inverse of :meth:`to_json` (the result shares the outcome's
        source and path, as a download's always does)."""
        path = Path(data["path"]) if data["path"] is not None else None
        result = None
        if data["seconds"] is not None and path is not None:
            extra = {name: data[name] for name in _RESULT_FIELDS}
            result = DownloadResult(source=data["source"], path=path, bytes=data["bytes"], **extra)
        error = data["error"]
        return cls(
            source=data["source"],
            path=path,
            status=data["status"],
            result=result,
            error=error_from_json(error) if error is not None else None,
            size=data["size"],
        )


#: The fields of a DownloadResult an outcome's JSON carries besides its own.
_RESULT_FIELDS = ("seconds", "attempts", "etag", "version_id", "verified", "resumed")


@dataclass(slots=True)
class BatchResult:
    """The summary of a batch (``download_many`` / ``download_prefix``).

    Counts are exact however large the batch; ``failures`` keeps the first
    ``MAX_FAILURES_KEPT`` failed outcomes (10,000) so that memory stays
    bounded when a whole prefix fails.

    Attributes:
        downloaded: objects downloaded and verified.
        existing: objects skipped because they were already there.
        directories: directory markers created.
        noncurrent: inventory records of noncurrent versions and delete
            markers, passed over.
        planned: objects a dry run would download.
        planned_bytes: their sizes, summed.
        failed: objects that failed, were refused or were not attempted.
        bytes: bytes downloaded.
        seconds: wall time of the batch.
        errors: failures by error type name, e.g. ``{"NotFoundError": 2}``.
        failures: the failed outcomes (the first 10,000).
        stopped: True when ``fail_fast`` stopped the batch at its first failure.
    """

    MAX_FAILURES_KEPT = 10_000

    downloaded: int = 0
    existing: int = 0
    directories: int = 0
    noncurrent: int = 0
    planned: int = 0
    planned_bytes: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    failures: list[ObjectOutcome] = field(default_factory=list)
    stopped: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.failed == 0 and not self.stopped

    @property
    def objects(self) -> int:
        counted = self.downloaded + self.existing + self.directories + self.noncurrent
        return counted + self.planned + self.failed

    def add(self, outcome: ObjectOutcome) -> None:
        """Count one outcome."""
        if outcome.status == DOWNLOADED:
            self.downloaded += 1
            self.bytes += outcome.bytes
        elif outcome.status == EXISTING:
            self.existing += 1
        elif outcome.status == DIRECTORY:
            self.directories += 1
        elif outcome.status == NONCURRENT:
            self.noncurrent += 1
        elif outcome.status == PLANNED:
            self.planned += 1
            self.planned_bytes += outcome.size or 0
        else:
            self.failed += 1
            name = type(outcome.error).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            if len(self.failures) < self.MAX_FAILURES_KEPT:
                self.failures.append(outcome)

    def to_json(self) -> dict[str, Any]:
        """The JSON form: every count, ``ok``, and the kept failures as outcomes."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["errors"] = dict(self.errors)
        data["failures"] = [outcome.to_json() for outcome in self.failures]
        data["ok"] = self.ok
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchResult:
        """The inverse of :meth:`to_json`."""
        values = {key: value for key, value in data.items() if key != "ok"}
        values["errors"] = dict(data["errors"])
        values["failures"] = [ObjectOutcome.from_json(item) for item in data["failures"]]
        return cls(**values)

    def finish(self, seconds: float, *, fail_fast: bool) -> None:
        """Record the batch's duration once its last outcome is counted."""
        self.seconds = seconds
        # A fail-fast batch ends at its first failure: any failure stopped it.
        self.stopped = fail_fast and self.failed > 0

    def summary(self) -> str:
        """One line, e.g. ``1998 downloaded, 2 failed (NotFoundError: 2); 125.0 MiB in 3.1 s``.

        Example:
            >>> BatchResult(downloaded=3, bytes=3 << 20, seconds=1.5).summary()
            '3 downloaded; 3.0 MiB in 1.50 s (2.0 MiB/s)'
            >>> BatchResult(planned=2, planned_bytes=5 << 20, existing=1, seconds=0.2).summary()
            '2 to download (5.0 MiB), 1 already there; planned in 0.20 s, nothing written'
        """
        parts = [f"{self.downloaded} downloaded"]
        if self.planned:  # a dry run
            parts = [f"{self.planned} to download ({format_size(self.planned_bytes)})"]
        if self.existing:
            parts.append(f"{self.existing} already there")
        if self.directories:
            parts.append(f"{self.directories} directories")
        if self.noncurrent:
            parts.append(f"{self.noncurrent} noncurrent versions or delete markers passed over")
        if self.failed:
            kinds = ", ".join(f"{name}: {count}" for name, count in sorted(self.errors.items()))
            parts.append(f"{self.failed} failed ({kinds})")
        rate = self.bytes / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"{', '.join(parts)}; {format_size(self.bytes)} in {self.seconds:.2f} s "
            f"({format_size(rate)}/s)"
        )
        if self.planned:
            line = f"{', '.join(parts)}; planned in {self.seconds:.2f} s, nothing written"
        if self.stopped:
            line += "; stopped at the first failure (--fail-fast)"
        return line


async def counted(
    outcomes: AsyncIterable[ObjectOutcome],
    result: BatchResult,
    *,
    fail_fast: bool,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[ObjectOutcome]:
    """Pass ``outcomes`` through, counting each into ``result`` before it is
    seen, and finish ``result`` after the last: the one place a batch is counted.

    Example:
        >>> result = BatchResult()
        >>> async for outcome in counted(outcomes, result, fail_fast=False):  # doctest: +SKIP
        ...     print(result.objects, outcome.status)
    """
    started = clock()
    async for outcome in outcomes:
        result.add(outcome)
        # The time so far, so that a progress line's rate is right before the end.
        result.seconds = clock() - started
        yield outcome
    result.finish(clock() - started, fail_fast=fail_fast)
