"""Requester Pays and SSE-C: the headers each request kind carries, seen at
the fault server (HEAD, ranged GET, whole GET, ordered stream, ListObjectsV2),
through the API and the CLI; and an SSE-C key that never shows."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3pull
from s3pull import Client, TransferConfig
from s3pull.testing import FaultServer
from s3pull.testing._record import RequestRecord

from ..support import pattern

MiB = 1024 * 1024
KEY = bytes(range(100, 132))  # 32 bytes
KEY_B64 = base64.b64encode(KEY).decode()
KEY_MD5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()
SSE_C = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": KEY_B64,
    "x-amz-server-side-encryption-customer-key-md5": KEY_MD5,
}
PAYER = {"x-amz-request-payer": "requester"}


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.put_object("bkt", "big.bin", pattern(3 * MiB + 5, seed=1))
        server.put_object("bkt", "p/small-1", b"one")
        server.put_object("bkt", "p/small-2", b"two")
        yield server
        assert server.errors == []


def kind(record: RequestRecord) -> str:
    if record.key == "":
        return "list"
    if record.method == "HEAD":
        return "head"
    return "ranged" if record.range_header else "whole"


def signed_names(record: RequestRecord) -> set[str]:
    authorization = record.headers["authorization"]
    return set(authorization.split("SignedHeaders=")[1].split(",")[0].split(";"))


def assert_headers(s3: FaultServer, *, payer: bool, sse_c: bool) -> set[str]:
    """Every request carries (and signs) what it must, and nothing else; the kinds seen."""
    kinds = set()
    for record in s3.requests:
        kinds.add(kind(record))
        wanted = {**(PAYER if payer else {}), **(SSE_C if sse_c and record.key else {})}
        sent = {k: v for k, v in record.headers.items() if k in {*PAYER, *SSE_C}}
        assert sent == wanted, (kind(record), sent)
        assert set(wanted) <= signed_names(record)
    return kinds


def api_downloads(s3: FaultServer, tmp_path: Path, config: TransferConfig) -> None:
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        client.stat("s3://bkt/big.bin")
        client.download_file("s3://bkt/big.bin", tmp_path / "big.bin")
        batch = client.download_prefix("s3://bkt/p/", tmp_path / "p")
        with client.open("s3://bkt/big.bin", part_size=MiB) as reader:
            streamed = reader.read()
    assert batch.ok and batch.downloaded == 2
    assert (tmp_path / "big.bin").read_bytes() == streamed == pattern(3 * MiB + 5, seed=1)


@pytest.mark.parametrize(
    ("payer", "sse_c"), [(True, False), (False, True), (True, True), (False, False)]
)
def test_api_sends_the_headers_on_every_request_kind(
    s3: FaultServer, tmp_path: Path, payer: bool, sse_c: bool
) -> None:
    config = TransferConfig(
        part_size=MiB,
        request_payer="requester" if payer else None,
        sse_c_key=KEY if sse_c else None,
    )
    api_downloads(s3, tmp_path, config)
    assert assert_headers(s3, payer=payer, sse_c=sse_c) == {"head", "ranged", "whole", "list"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_cli_sends_the_headers_from_a_key_file(s3: FaultServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    common = ["--endpoint-url", s3.endpoint_url, "--request-payer", "requester"]
    common += ["--sse-c-key-file", str(key_file)]
    stat = cli("stat", "s3://bkt/big.bin", "--json", *common)
    copied = cli("cp", "s3://bkt/big.bin", str(tmp_path / "out"), "--part-size", "1MiB", *common)
    tree = cli("cp", "-r", "s3://bkt/p/", str(tmp_path / "p"), "--json", *common)
    streamed = cli("cat", "s3://bkt/p/small-1", *common)
    for done in (stat, copied, tree, streamed):
        assert done.returncode == 0, done.stderr
        assert KEY_B64 not in done.stdout + done.stderr
    assert streamed.stdout == "one"
    assert assert_headers(s3, payer=True, sse_c=True) >= {"head", "ranged", "whole", "list"}


def test_cli_takes_the_key_from_the_environment(s3: FaultServer, tmp_path: Path) -> None:
    done = cli(
        "cp", "-r", "s3://bkt/p/", str(tmp_path), "--endpoint-url", s3.endpoint_url,
        env={"S3PULL_SSE_C_KEY": KEY_B64},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert assert_headers(s3, payer=False, sse_c=True) == {"list", "whole"}


def test_the_key_never_shows_in_reprs_or_errors(s3: FaultServer, tmp_path: Path) -> None:
    config = TransferConfig(sse_c_key=KEY)
    shown = [repr(config), str(config)]
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        with pytest.raises(s3pull.NotFoundError) as caught:
            client.download_file("s3://bkt/missing", tmp_path / "x")
        shown += [
            str(caught.value),
            repr(caught.value),
            repr(pickle.loads(pickle.dumps(caught.value))),
        ]
        shown += [repr(client.stat("s3://bkt/big.bin"))]
    failed = cli(
        "cp", "s3://bkt/missing", str(tmp_path / "y"), "--json", "-v",
        "--endpoint-url", s3.endpoint_url, env={"S3PULL_SSE_C_KEY": KEY_B64},
    )  # fmt: skip
    assert failed.returncode == 1
    shown += [failed.stdout, failed.stderr]
    for text in shown:
        assert KEY_B64 not in text and KEY_MD5 not in text
        assert repr(KEY)[2:-1] not in text and KEY.hex() not in text


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_a_key_of_the_wrong_length_is_a_config_error(length: int, tmp_path: Path) -> None:
    with pytest.raises(s3pull.ConfigError, match=f"32 bytes.*got {length}$"):
        TransferConfig(sse_c_key=b"k" * length)
    key_file = tmp_path / "key"
    key_file.write_bytes(b"k" * length)
    done = cli("stat", "s3://bkt/k", "--sse-c-key-file", str(key_file))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"s3pull: error: sse_c_key must be 32 bytes (AES-256), got {length}"
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--sse-c-key-file", "/nonexistent/key"], {}, "cannot read the SSE-C key file"),
        ([], {"S3PULL_SSE_C_KEY": "not base64!"}, "S3PULL_SSE_C_KEY is not base64"),
        (["--request-payer", "bucket-owner"], {}, "invalid choice"),
    ],
)
def test_bad_key_sources_are_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    done = cli("stat", "s3://bkt/k", *args, env=env)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert message in line
    assert "not base64!" not in done.stderr


def test_request_payer_is_validated() -> None:
    with pytest.raises(s3pull.ConfigError, match="request_payer must be 'requester'"):
        TransferConfig(request_payer="owner")
