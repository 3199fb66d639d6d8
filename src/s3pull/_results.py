"""Frozen results: what a download or a stat returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

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
        attempts: HTTP requests made, retries included.
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
