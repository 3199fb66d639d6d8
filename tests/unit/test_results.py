"""ObjectInfo (which ETags are MD5s, which checksums cover the object) and DownloadResult."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from s3pull import DownloadResult, ObjectInfo

HEX = "9b2cf535f27731c974343645a3985328"


def info(**kwargs: object) -> ObjectInfo:
    return ObjectInfo("s3://b/k", 10, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("etag", "encryption", "expected"),
    [
        (f'"{HEX}"', None, HEX),
        (HEX, None, HEX),
        (f'"{HEX.upper()}"', None, HEX),
        (f'"{HEX}"', "AES256", HEX),
    ],
)
def test_md5_from_plain_s3_etag(etag: str, encryption: str | None, expected: str) -> None:
    assert info(etag=etag, encryption=encryption, is_s3=True).md5 == expected


@pytest.mark.parametrize(
    ("etag", "encryption", "is_s3"),
    [
        (f'"{HEX}"', None, False),  # a web server's ETag is anything it likes
        (f'"{HEX}-3"', None, True),  # multipart
        (f'"{HEX}"', "aws:kms", True),
        (f'"{HEX}"', "aws:kms:dsse", True),
        (f'"{HEX}"', "SSE-C", True),
        (f'"{HEX[:-1]}"', None, True),  # 31 hex
        (f'"{HEX}0"', None, True),  # 33 hex
        (f'"{HEX[:-1]}g"', None, True),
        (f'W/"{HEX}"', None, True),
        (None, None, True),
        ("", None, True),
    ],
)
def test_no_md5(etag: str | None, encryption: str | None, is_s3: bool) -> None:
    assert info(etag=etag, encryption=encryption, is_s3=is_s3).md5 is None


@pytest.mark.parametrize(
    ("checksums", "checksum_type", "expected"),
    [
        ({"CRC64NVME": "AAAAAAAAAAA="}, "FULL_OBJECT", ("CRC64NVME", "AAAAAAAAAAA=")),
        ({"CRC32C": "bu8DJg=="}, None, ("CRC32C", "bu8DJg==")),
        ({"CRC32C": "bu8DJg=="}, "COMPOSITE", None),
        ({"SHA256": "abc=-3"}, None, None),  # composite of 3 parts
        ({"SHA256": "abc=-3", "CRC32": "AAAAAA=="}, None, ("CRC32", "AAAAAA==")),
        ({}, "FULL_OBJECT", None),
        ({}, None, None),
    ],
)
def test_full_object_checksum(
    checksums: dict[str, str], checksum_type: str | None, expected: tuple[str, str] | None
) -> None:
    assert info(checksums=checksums, checksum_type=checksum_type).full_object_checksum() == expected


def test_object_info_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        info().size = 3  # type: ignore[misc]


def test_download_result() -> None:
    result = DownloadResult("s3://b/k", Path("/tmp/k"), bytes=1000, seconds=2.0, attempts=1)
    assert result.throughput == 500.0
    assert DownloadResult("s3://b/k", Path("k"), bytes=10, seconds=0.0, attempts=1).throughput == 0
    assert "s3://b/k" in repr(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.bytes = 3  # type: ignore[misc]


def test_batch_result_counts_every_outcome_and_keeps_bounded_failures() -> None:
    from pathlib import Path

    from s3pull import BatchResult, DownloadResult, NotFoundError, ObjectOutcome

    result = BatchResult()
    done = DownloadResult(source="s3://b/a", path=Path("a"), bytes=2048, seconds=1.0, attempts=1)
    result.add(ObjectOutcome("s3://b/a", Path("a"), "downloaded", result=done))
    result.add(ObjectOutcome("s3://b/d/", Path("d"), "directory"))
    result.add(ObjectOutcome("s3://b/e", Path("e"), "existing"))
    for i in range(BatchResult.MAX_FAILURES_KEPT + 5):
        result.add(ObjectOutcome(f"s3://b/{i}", None, "failed", error=NotFoundError("gone")))
    result.finish(2.0, fail_fast=False)
    assert (result.downloaded, result.directories, result.existing) == (1, 1, 1)
    assert result.failed == BatchResult.MAX_FAILURES_KEPT + 5
    assert len(result.failures) == BatchResult.MAX_FAILURES_KEPT
    assert result.errors == {"NotFoundError": BatchResult.MAX_FAILURES_KEPT + 5}
    assert result.objects == BatchResult.MAX_FAILURES_KEPT + 8
    assert not result.ok and not result.stopped
    assert result.summary().startswith("1 downloaded, 1 already there, 1 directories, 10005 failed")


def test_a_fail_fast_batch_with_a_failure_stopped() -> None:
    from s3pull import BatchResult, NotFoundError, ObjectOutcome

    result = BatchResult()
    result.add(ObjectOutcome("s3://b/x", None, "failed", error=NotFoundError("gone")))
    result.finish(0.5, fail_fast=True)
    assert result.stopped
    assert result.summary().endswith("stopped at the first failure (--fail-fast)")
