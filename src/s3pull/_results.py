"""Frozen results: what a download or a stat returns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

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
