"""Many objects from a real S3 API server (moto): prefixes, filters, skip-existing,
manifests, unusual keys, and the CLI's exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from s3pull import Client, TransferConfig

from ..support import pattern
from .conftest import MotoServer

MiB = 1024 * 1024


def put(moto: MotoServer, bucket: str, objects: dict[str, bytes]) -> None:
    s3 = moto.client()
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_prefix_download_matches_the_bucket(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    objects = {
        "set/a.bin": pattern(1, seed=1),
        "set/deep/er/b.bin": pattern(70_000, seed=2),
        "set/spaces and ünïcode/c d.txt": b"text",
        "set/plus+sign%percent.bin": b"odd",
        "set/multi.bin": pattern(3 * MiB + 1, seed=3),  # several parts: HEAD + ranged GETs
        "outside.bin": b"not under the prefix",
    }
    put(moto_server, bucket, objects)
    config = TransferConfig(part_size=1 * MiB)
    with Client(endpoint_url=moto_server.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix(f"s3://{bucket}/set/", tmp_path)
    assert batch.ok, batch.failures
    assert files_under(tmp_path) == {
        key.removeprefix("set/"): data for key, data in objects.items() if key.startswith("set/")
    }
    assert batch.bytes == sum(len(d) for k, d in objects.items() if k.startswith("set/"))


def test_many_pages_filters_and_skip_existing(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    s3 = moto_server.client()
    for i in range(1100):  # two listing pages
        s3.put_object(Bucket=bucket, Key=f"p/{i:04d}.{'csv' if i % 2 else 'json'}", Body=b"%d" % i)
    rules = [("exclude", "*.json")]
    with Client(endpoint_url=moto_server.endpoint_url, subscribers=[]) as client:
        first = client.download_prefix(f"s3://{bucket}/p/", tmp_path, filters=rules)
        again = client.download_prefix(
            f"s3://{bucket}/p/", tmp_path, filters=rules, skip_existing=True
        )
    assert first.downloaded == 550 and first.ok
    assert (again.downloaded, again.existing) == (0, 550)
    assert (tmp_path / "1099.csv").read_bytes() == b"1099"
    assert not any(name.endswith(".json") for name in os.listdir(tmp_path))


def test_cli_from_file_with_a_missing_key_exits_1(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    put(moto_server, bucket, {"k/1": b"one", "k/2": b"two"})
    listing = tmp_path / "keys.txt"
    listing.write_text(f"k/1\ns3://{bucket}/k/2\nk/absent\n")
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server.endpoint_url)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "s3pull",
            "cp",
            "--from-file",
            str(listing),
            f"s3://{bucket}",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "2 downloaded, 1 failed (NotFoundError: 1)" in done.stderr
    assert files_under(tmp_path / "out") == {"k/1": b"one", "k/2": b"two"}
