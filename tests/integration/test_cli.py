"""The command line, run as a real subprocess: exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3pull import Client, TransferError, TransientError
from s3pull.testing import FaultServer

from ..support import leftovers, pattern
from .conftest import MotoServer, RangeFileServer


def s3pull(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_cp_and_stat_json(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    data = pattern(3_000_000, seed=11)
    moto_server.client().put_object(Bucket=bucket, Key="dir/file.bin", Body=data)
    endpoint = ["--endpoint-url", moto_server.endpoint_url]
    copied = s3pull("cp", f"s3://{bucket}/dir/file.bin", f"{tmp_path}/", "--json", *endpoint)
    assert copied.returncode == 0, copied.stderr
    result = json.loads(copied.stdout)
    assert result["bytes"] == len(data)
    assert result["path"] == str(tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == data
    stat = s3pull("stat", f"s3://{bucket}/dir/file.bin", "--json", *endpoint)
    assert stat.returncode == 0, stat.stderr
    assert json.loads(stat.stdout)["size"] == len(data)
    human = s3pull("stat", f"s3://{bucket}/dir/file.bin", *endpoint)
    assert "3000000" in human.stdout


def test_plain_progress_and_summary_when_not_a_tty(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    moto_server.client().put_object(Bucket=bucket, Key="f", Body=b"x" * 1000)
    copied = s3pull(
        "cp", f"s3://{bucket}/f", str(tmp_path / "f"), "--endpoint-url", moto_server.endpoint_url
    )
    assert copied.returncode == 0
    assert copied.stdout == ""
    assert f"s3://{bucket}/f -> {tmp_path / 'f'}" in copied.stderr
    quiet = s3pull(
        "cp",
        f"s3://{bucket}/f",
        str(tmp_path / "g"),
        "-q",
        "--endpoint-url",
        moto_server.endpoint_url,
    )
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["cp", "s3://{bucket}/missing", "{tmp}/x"], 1, "not found"),
        (["cp", "ftp://host/file", "{tmp}/x"], 2, "unsupported source"),
        (["cp", "s3://{bucket}/k", "{tmp}/x", "--part-size", "lots"], 2, "not a size"),
        (["cp", "s3://{bucket}/k", "{tmp}/x", "--concurrency", "0"], 2, "must be a whole number"),
        (["cp", "s3://{bucket}/k", "{tmp}/x", "--memory-limit", "1KiB"], 2, "memory_limit"),
        (["stat", "s3://{bucket}/missing"], 1, "not found"),
    ],
)
def test_failures_are_one_line_and_non_zero(
    moto_server: MotoServer,
    bucket: str,
    tmp_path: Path,
    args: list[str],
    code: int,
    message: str,
) -> None:
    argv = [a.format(bucket=bucket, tmp=tmp_path) for a in args]
    done = s3pull(*argv, "--endpoint-url", moto_server.endpoint_url)
    assert done.returncode == code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert leftovers(tmp_path) == []


def test_presigned_signature_never_reaches_stderr(
    file_server: RangeFileServer, tmp_path: Path
) -> None:
    secret = "S3cr3tSignatureValue0042"
    done = s3pull("cp", f"{file_server.url}/nowhere.bin?X-Amz-Signature={secret}", str(tmp_path))
    assert done.returncode == 1
    assert "not found" in done.stderr
    assert secret not in done.stderr + done.stdout


# -- connection failures no retry can fix: one attempt, one line ----------------------


def test_https_to_a_plain_http_port_is_one_attempt_and_one_line(tmp_path: Path) -> None:
    with FaultServer() as s3:
        s3.put_object("bucket", "k", b"hello")
        https = s3.endpoint_url.replace("http://", "https://")
        client = Client(endpoint_url=https, subscribers=[])
        with client, pytest.raises(TransferError) as raised:
            client.download_file("s3://bucket/k", tmp_path / "api")
        assert not isinstance(raised.value, TransientError)
        assert raised.value.attempts == 1
        assert len(s3.requests) == 1  # the handshake, answered 400 like any HTTP server
        done = s3pull("cp", "s3://bucket/k", str(tmp_path / "cli"), "--endpoint-url", https)
        assert len(s3.requests) == 2
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("s3pull: error: s3://bucket/k: TLS failed")
    assert "WRONG_VERSION_NUMBER" in lines[0] and "attempt" not in lines[0]
    assert leftovers(tmp_path) == []


def test_a_host_name_that_does_not_exist_is_one_attempt_and_one_line(tmp_path: Path) -> None:
    url = "http://no-such-host.invalid/file.bin"  # .invalid never resolves (RFC 6761)
    with Client(subscribers=[]) as client, pytest.raises(TransferError) as raised:
        client.download_file(url, tmp_path / "api")
    assert not isinstance(raised.value, TransientError)
    assert raised.value.attempts == 1
    assert "cannot resolve the host name" in str(raised.value)
    done = s3pull("cp", url, str(tmp_path / "cli"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"s3pull: error: {url}: cannot resolve the host name")
    assert leftovers(tmp_path) == []
