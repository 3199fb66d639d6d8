"""A broker that cannot be used is one error line before any download."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull.testing import FaultServer

pytest.importorskip("celery")


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        for i in range(3):
            server.put_object("bucket", f"p/{i}", b"x" * 100)
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cp_over(s3: FaultServer, broker: str, out: Path) -> subprocess.CompletedProcess[str]:
    args = ["cp", "-r", "s3://bucket/p/", str(out), "--celery", broker]
    env = {"AWS_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": "k"}
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        env={**os.environ, **env, "AWS_SECRET_ACCESS_KEY": "s"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unreachable_broker_is_one_line_and_downloads_nothing(
    s3: FaultServer, tmp_path: Path
) -> None:
    done = cp_over(s3, f"redis://:hunter2@127.0.0.1:{closed_port()}/0", tmp_path / "out")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("s3pull: error: cannot reach the Celery broker redis://***@127.0.0.1:")
    assert "hunter2" not in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert not [r for r in s3.requests if r.method == "GET"], "nothing is downloaded"


def test_a_broker_url_that_is_not_redis_is_a_usage_error(s3: FaultServer, tmp_path: Path) -> None:
    done = cp_over(s3, "amqp://127.0.0.1/", tmp_path / "out")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("s3pull: error: the Celery broker amqp://127.0.0.1/: Redis URL must")
