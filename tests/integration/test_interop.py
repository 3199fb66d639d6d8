"""The same downloads against every S3 API server the suite starts: moto's and
s3rver's, two independent implementations with their own dialects (XML
namespaces, headers, what they leave out). Through the API and through the
CLI as a subprocess. What a server does not implement is skipped, with the
reason, never passed."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_plus

import pytest

import s3pull
from s3pull import Client, TransferConfig

from ..support import leftovers, pattern
from .conftest import S3Store

MiB = 1024 * 1024
SMALL_PARTS = TransferConfig(part_size=1 * MiB, concurrency=4)
#: Keys S3 allows and URLs, XML and file systems each treat differently.
ODD_KEYS = [
    "tree/dir with space/a b.txt",
    "tree/plus+sign/c+d.bin",
    "tree/percent%25/100%.txt",
    "tree/ü/ünïcødé ✓.txt",
    "tree/eq=amp&/k=v&x=y.bin",
    "tree/deep/er/and/deeper/leaf",
]


def s3pull_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a subprocess; the store's endpoint and keys come from the environment."""
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        capture_output=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("s3pull: error: ") or ": " in lines[0]
    return lines[0]


@pytest.mark.parametrize("size", [0, 1, MiB + 1, 3 * MiB + 5])
def test_objects_of_several_sizes_in_parallel_parts(
    s3_store: S3Store, tmp_path: Path, size: int
) -> None:
    data = pattern(size, seed=size)
    s3_store.put(f"obj-{size}", data)
    with Client(config=SMALL_PARTS, subscribers=[]) as client:
        result = client.download_file(f"s3://{s3_store.bucket}/obj-{size}", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert result.bytes == size
    assert leftovers(tmp_path) == ["out"]


def test_stat(s3_store: S3Store) -> None:
    data = pattern(1000, seed=1)
    s3_store.put("dir/stat me.bin", data)
    done = s3pull_cli("stat", f"s3://{s3_store.bucket}/dir/stat me.bin", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["size"] == len(data)
    assert info["etag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_recursive_copy_of_nested_prefixes_with_odd_keys(s3_store: S3Store, tmp_path: Path) -> None:
    objects = {key: pattern(100 + n * 333, seed=n) for n, key in enumerate(ODD_KEYS)}
    objects["tree/big.bin"] = pattern(2 * MiB + 3, seed=99)
    for key, data in objects.items():
        s3_store.put(key, data)
    s3_store.put("treehouse/not-under-the-prefix", b"no")
    done = s3pull_cli(
        "cp", "-r", f"s3://{s3_store.bucket}/tree/", str(tmp_path), "--part-size", "1MiB"
    )
    assert done.returncode == 0, done.stderr
    got = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file()
    }
    assert got == {key.removeprefix("tree/"): data for key, data in objects.items()}


def test_from_file(s3_store: S3Store, tmp_path: Path) -> None:
    objects = {key: pattern(10 + n, seed=n) for n, key in enumerate(ODD_KEYS[:4])}
    for key, data in objects.items():
        s3_store.put(key, data)
    listing = tmp_path / "keys.txt"
    lines = [*objects, f"s3://{s3_store.bucket}/{ODD_KEYS[0]}", "tree/missing"]
    listing.write_text("".join(f"{line}\n" for line in lines[1:]) + f"{lines[0]}\n")
    out = tmp_path / "out"
    done = s3pull_cli("cp", "--from-file", str(listing), f"s3://{s3_store.bucket}/", str(out))
    assert done.returncode == 1  # tree/missing
    assert b"NotFoundError" in done.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == objects


def test_cat_writes_the_object_in_order(s3_store: S3Store) -> None:
    data = pattern(3 * MiB + 17, seed=5)
    s3_store.put("cat/me.bin", data)
    done = s3pull_cli("cat", f"s3://{s3_store.bucket}/cat/me.bin", "--part-size", "1MiB")
    assert done.returncode == 0, done.stderr
    assert done.stdout == data


def test_inventory_download(s3_store: S3Store, tmp_path: Path) -> None:
    objects = {key: pattern(50 + n * 7, seed=n) for n, key in enumerate(ODD_KEYS)}
    for key, data in objects.items():
        s3_store.put(key, data)
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    for key, data in objects.items():
        # Inventory CSV keys are URL-encoded, ETags unquoted.
        row = [s3_store.bucket, quote_plus(key, safe="/"), len(data)]
        writer.writerow([*row, "2024-04-24T23:06:40.000Z", hashlib.md5(data).hexdigest()])
    body = gzip.compress(out.getvalue().encode())
    s3_store.put("inventory/data/0000.csv.gz", body)
    manifest = {
        "sourceBucket": s3_store.bucket,
        "destinationBucket": f"arn:aws:s3:::{s3_store.bucket}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": [
            {
                "key": "inventory/data/0000.csv.gz",
                "size": len(body),
                "MD5checksum": hashlib.md5(body).hexdigest(),
            }
        ],
    }
    s3_store.put("inventory/manifest.json", json.dumps(manifest).encode())
    manifest_url = f"s3://{s3_store.bucket}/inventory/manifest.json"
    done = s3pull_cli("inventory", manifest_url, "--download", str(tmp_path), "--count")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(objects)).encode()]
    got = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file()
    }
    assert got == objects


@pytest.mark.parametrize("what", ["key", "bucket"])
def test_missing_keys_and_buckets(s3_store: S3Store, tmp_path: Path, what: str) -> None:
    bucket = s3_store.bucket if what == "key" else f"{s3_store.bucket}-missing"
    copied = s3pull_cli("cp", f"s3://{bucket}/nothing-here", str(tmp_path / "x"))
    assert copied.returncode == 1
    assert "not found" in one_error_line(copied)
    listed = s3pull_cli("cp", "-r", f"s3://{bucket}/prefix/", str(tmp_path / "d"))
    if what == "key":  # an empty prefix is no error
        assert listed.returncode == 0, listed.stderr
    else:
        assert listed.returncode == 1
        assert "not found" in one_error_line(listed)
    with Client(subscribers=[]) as client, pytest.raises(s3pull.NotFoundError):
        client.stat(f"s3://{bucket}/nothing-here")
    assert leftovers(tmp_path) in ([], ["d"])


def test_wrong_credentials_are_one_line(
    s3_store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not s3_store.checks_credentials:
        pytest.skip(f"{s3_store.name} accepts any credentials")
    s3_store.put("k", b"data")
    # s3rver checks the access key ID, not the signature's secret.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "WRONGKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    done = s3pull_cli("cp", f"s3://{s3_store.bucket}/k", str(tmp_path / "k"))
    assert done.returncode == 1
    line = one_error_line(done)
    assert "credentials rejected" in line or "access denied" in line
    assert "wrong-secret" not in line
    assert leftovers(tmp_path) == []


def test_versions(s3_store: S3Store, tmp_path: Path) -> None:
    if not s3_store.versioning:
        pytest.skip(f"{s3_store.name} has no versioning")
    s3 = s3_store.client()
    s3.put_bucket_versioning(Bucket=s3_store.bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=s3_store.bucket, Key="v", Body=b"first")["VersionId"]
    s3.put_object(Bucket=s3_store.bucket, Key="v", Body=b"second")
    done = s3pull_cli("cp", f"s3://{s3_store.bucket}/v", str(tmp_path / "v"), "--version-id", first)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v").read_bytes() == b"first"


def test_additional_checksums(s3_store: S3Store, tmp_path: Path) -> None:
    if not s3_store.checksums:
        pytest.skip(f"{s3_store.name} stores no additional checksums")
    data = pattern(2 * MiB + 1, seed=4)
    s3_store.client().put_object(
        Bucket=s3_store.bucket, Key="sum", Body=data, ChecksumAlgorithm="CRC32C"
    )
    with Client(config=SMALL_PARTS, subscribers=[]) as client:
        result = client.download_file(f"s3://{s3_store.bucket}/sum", tmp_path / "sum")
    assert result.verified == "CRC32C"
    assert (tmp_path / "sum").read_bytes() == data
