"""Downloads from a real S3 API server (moto): bytes, versions, checksums, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

import s3pull
from s3pull import AsyncClient, Client, TransferConfig

from ..support import leftovers, pattern
from .conftest import MotoServer

MiB = 1024 * 1024
SMALL_PARTS = TransferConfig(part_size=1 * MiB, concurrency=4)


def client(moto: MotoServer, config: TransferConfig = SMALL_PARTS) -> Client:
    return Client(endpoint_url=moto.endpoint_url, config=config, subscribers=[])


@pytest.mark.parametrize("size", [0, 1, 1000, MiB - 1, MiB, MiB + 1, 5 * MiB + 7])
def test_bytes_are_identical_for_every_size(
    moto_server: MotoServer, bucket: str, tmp_path: Path, size: int
) -> None:
    data = pattern(size, seed=size)
    moto_server.client().put_object(Bucket=bucket, Key=f"obj-{size}", Body=data)
    with client(moto_server) as c:
        result = c.download_file(f"s3://{bucket}/obj-{size}", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert result.bytes == size
    assert result.path == tmp_path / "out.bin"
    # one GET per 1 MiB part, the first one plain (and the only one for an empty object)
    assert result.attempts == max(1, -(-size // MiB))
    assert leftovers(tmp_path) == ["out.bin"]


def test_directory_destination_uses_the_key_name(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    moto_server.client().put_object(Bucket=bucket, Key="deep/dir/name.txt", Body=b"hello")
    with client(moto_server) as c:
        into_existing = c.download_file(f"s3://{bucket}/deep/dir/name.txt", tmp_path)
        into_new = c.download_file(f"s3://{bucket}/deep/dir/name.txt", f"{tmp_path}/new/")
    assert into_existing.path == tmp_path / "name.txt"
    assert into_new.path == tmp_path / "new" / "name.txt"
    assert into_new.path.read_bytes() == b"hello"


def test_hostile_key_is_fetched_verbatim_but_never_used_as_a_path(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    s3 = moto_server.client()
    s3.put_object(Bucket=bucket, Key="../../escape.txt", Body=b"data")
    s3.put_object(Bucket=bucket, Key="a/..", Body=b"dots")
    with client(moto_server) as c:
        # An explicit file destination: the key's name plays no part.
        c.download_file(f"s3://{bucket}/../../escape.txt", tmp_path / "safe.txt")
        assert (tmp_path / "safe.txt").read_bytes() == b"data"
        # A directory destination would need the name "..": refused.
        with pytest.raises(s3pull.UnsafePathError):
            c.download_file(f"s3://{bucket}/a/..", tmp_path)
    assert leftovers(tmp_path) == ["safe.txt"]
    assert not (tmp_path.parent / "escape.txt").exists()


def test_versions_are_pinned(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    s3 = moto_server.client()
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="v", Body=b"first" * 500_000)["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="v", Body=b"second" * 400_000)["VersionId"]
    with client(moto_server) as c:
        old = c.download_file(f"s3://{bucket}/v", tmp_path / "old", version_id=first)
        new = c.download_file(f"s3://{bucket}/v", tmp_path / "new")
        info = c.stat(f"s3://{bucket}/v", version_id=first)
    assert (tmp_path / "old").read_bytes() == b"first" * 500_000
    assert (tmp_path / "new").read_bytes() == b"second" * 400_000
    assert (old.version_id, new.version_id, info.version_id) == (first, second, first)
    assert info.size == 2_500_000


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_full_object_checksums_are_verified(
    moto_server: MotoServer, bucket: str, tmp_path: Path, algorithm: str
) -> None:
    data = pattern(3 * MiB + 11, seed=7)
    moto_server.client().put_object(
        Bucket=bucket, Key="sum", Body=data, ChecksumAlgorithm=algorithm
    )
    with client(moto_server) as c:
        info = c.stat(f"s3://{bucket}/sum")
        result = c.download_file(f"s3://{bucket}/sum", tmp_path / "sum")
    assert algorithm in info.checksums
    assert result.verified == algorithm
    assert (tmp_path / "sum").read_bytes() == data


def test_single_part_etag_is_verified_as_md5(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    data = pattern(2 * MiB + 3, seed=3)
    import boto3

    # boto3 adds a CRC32 to uploads by default; without it only the MD5 ETag is left.
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        config=Config(request_checksum_calculation="when_required"),
    )
    s3.put_object(Bucket=bucket, Key="md5", Body=data)
    with client(moto_server) as c:
        info = c.stat(f"s3://{bucket}/md5")
        result = c.download_file(f"s3://{bucket}/md5", tmp_path / "md5")
    assert info.checksums == {}
    assert info.md5 == hashlib.md5(data).hexdigest()
    assert result.verified == "MD5"


def test_multipart_object_never_fails_on_its_composite_etag(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    s3 = moto_server.client()
    parts = [pattern(5 * MiB, seed=1), pattern(MiB + 5, seed=2)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    etags = [
        s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=n + 1, Body=body
        )["ETag"]
        for n, body in enumerate(parts)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n + 1} for n, e in enumerate(etags)]},
    )
    with client(moto_server) as c:
        info = c.stat(f"s3://{bucket}/mp")
        c.download_file(f"s3://{bucket}/mp", tmp_path / "mp")
    assert info.etag is not None and info.etag.strip('"').endswith("-2")
    assert info.md5 is None
    assert (tmp_path / "mp").read_bytes() == b"".join(parts)


def test_object_overwritten_between_head_and_get(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    s3 = moto_server.client()
    s3.put_object(Bucket=bucket, Key="moving", Body=b"a" * (3 * MiB))
    destination = tmp_path / "moving"
    destination.write_bytes(b"previous content")
    with client(moto_server) as c:
        stale = c.stat(f"s3://{bucket}/moving")
        s3.put_object(Bucket=bucket, Key="moving", Body=b"b" * (3 * MiB))
        with pytest.raises(s3pull.ObjectChangedError) as caught:
            c.download_file(f"s3://{bucket}/moving", destination, info=stale)
    assert caught.value.status == 412
    assert destination.read_bytes() == b"previous content"
    assert leftovers(tmp_path) == ["moving"]


def test_missing_key_and_bucket(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    with client(moto_server) as c:
        with pytest.raises(s3pull.NotFoundError) as missing_key:
            c.download_file(f"s3://{bucket}/nope", tmp_path / "nope")
        with pytest.raises(FileNotFoundError):
            c.stat("s3://no-such-bucket-here/key")
    assert missing_key.value.source == f"s3://{bucket}/nope"
    assert leftovers(tmp_path) == []


def test_download_to_temp_and_open_temp_clean_up(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    moto_server.client().put_object(Bucket=bucket, Key="doc.pdf", Body=b"%PDF-1.7 ...")
    with client(moto_server) as c:
        with c.download_to_temp(f"s3://{bucket}/doc.pdf", dir=tmp_path) as path:
            assert path.name == "doc.pdf"
            assert path.read_bytes() == b"%PDF-1.7 ..."
        assert not path.exists()
        with (
            pytest.raises(RuntimeError),
            c.download_to_temp(f"s3://{bucket}/doc.pdf", dir=tmp_path) as path,
        ):
            raise RuntimeError("the caller failed")
        assert not path.exists()
        with c.open_temp(f"s3://{bucket}/doc.pdf", dir=tmp_path) as handle:
            assert handle.read() == b"%PDF-1.7 ..."
            assert leftovers(tmp_path) == []  # no name left even while open
    assert leftovers(tmp_path) == []


async def test_async_client_and_temp_context(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    data = pattern(3 * MiB, seed=9)
    moto_server.client().put_object(Bucket=bucket, Key="async.bin", Body=data)
    seen: list[Any] = []

    class Recorder(s3pull.Subscriber):
        def on_progress(self, source: str, done: int, total: int) -> None:
            seen.append((done, total))

    async with (
        AsyncClient(
            endpoint_url=moto_server.endpoint_url, config=SMALL_PARTS, subscribers=[Recorder()]
        ) as c,
        c.download_to_temp(f"s3://{bucket}/async.bin", dir=tmp_path) as path,
    ):
        assert path.read_bytes() == data
    assert leftovers(tmp_path) == []
    assert seen[-1] == (len(data), len(data))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
