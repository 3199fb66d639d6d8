"""The bandwidth limit (``max_bandwidth`` / ``--bwlimit``) against the fault server.

Only lower bounds are asserted, derived from the limit itself: ``n`` bytes
through a bucket of ``rate`` bytes/s and ``burst`` bytes take at least
``(n - burst) / rate`` seconds, however fast the machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull import AsyncClient, Client, S3PullError, Subscriber, Timeouts, TransferConfig
from s3pull.testing import FaultServer, generate_bytes

from ..support import leftovers

MiB = 1024 * 1024
RATE = 2 * MiB
SIZE = 4 * MiB
#: Four streams of 1 MiB parts, all drawing on the one limit.
CONFIG = TransferConfig(part_size=1 * MiB, concurrency=4, max_bandwidth="2MiB/s")
#: What the limit lets through at once (documented with ``max_bandwidth``).
BURST = max(CONFIG.stream_cost, RATE // 10)


def _least_seconds(size: int) -> float:
    return (size - BURST) / RATE


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.put_generated("bucket", "a.bin", SIZE)
        server.put_generated("bucket", "b.bin", SIZE)
        yield server
        assert server.errors == []


def test_a_download_into_a_file_keeps_to_the_limit(s3: FaultServer, tmp_path: Path) -> None:
    started = time.monotonic()
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        client.download_file("s3://bucket/a.bin", tmp_path / "a.bin")
    assert time.monotonic() - started >= _least_seconds(SIZE)
    assert (tmp_path / "a.bin").read_bytes() == generate_bytes("a.bin", SIZE)


async def test_an_ordered_stream_keeps_to_the_limit(s3: FaultServer) -> None:
    # Ordered streams read their bodies on the event loop.
    started = time.monotonic()
    async with (
        AsyncClient(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client,
        client.open("s3://bucket/a.bin") as stream,
    ):
        body = await stream.read()
    assert time.monotonic() - started >= _least_seconds(SIZE)
    assert body == generate_bytes("a.bin", SIZE)


def test_objects_downloaded_at_once_share_one_limit(s3: FaultServer, tmp_path: Path) -> None:
    started = time.monotonic()
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        batch = client.download_many(["s3://bucket/a.bin", "s3://bucket/b.bin"], tmp_path)
    assert batch.ok and batch.downloaded == 2, batch.failures
    assert time.monotonic() - started >= _least_seconds(2 * SIZE)


@pytest.mark.parametrize("path", ["file", "stream"])
async def test_a_throttled_body_is_not_a_stalled_one(
    s3: FaultServer, tmp_path: Path, path: str
) -> None:
    # Each of the four streams gets a quarter of 2 MiB/s, far below the
    # 8 MiB/s floor; the floor judges the server, not the limit.
    timeouts = Timeouts(5, stall_window=0.3, stall_min_rate=8 * MiB)
    # Small reads, so that every part takes several, each after a wait.
    config = TransferConfig(
        part_size=1 * MiB,
        concurrency=4,
        read_buffer=16 * 1024,
        max_bandwidth=RATE,
        timeouts=timeouts,
    )
    retries = _Retries()
    async with AsyncClient(
        endpoint_url=s3.endpoint_url, config=config, subscribers=[retries]
    ) as client:
        if path == "file":
            await client.download_file("s3://bucket/a.bin", tmp_path / "a.bin")
            body = (tmp_path / "a.bin").read_bytes()
        else:
            async with client.open("s3://bucket/a.bin") as stream:
                body = await stream.read()
    assert body == generate_bytes("a.bin", SIZE)
    assert retries.errors == []  # not one stream was abandoned as stalled


class _Retries(Subscriber):
    def __init__(self) -> None:
        self.errors: list[S3PullError] = []

    def on_retry(self, source: str, error: S3PullError, attempt: int, delay: float) -> None:
        self.errors.append(error)


def _cli(s3: FaultServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", "cp", "--endpoint-url", s3.endpoint_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_keeps_to_bwlimit(s3: FaultServer, tmp_path: Path) -> None:
    started = time.monotonic()
    done = _cli(s3, "-q", "--bwlimit", "2MiB/s", "s3://bucket/a.bin", str(tmp_path / "a.bin"))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= _least_seconds(SIZE)
    assert (tmp_path / "a.bin").read_bytes() == generate_bytes("a.bin", SIZE)


@pytest.mark.parametrize("value", ["fast", "-1", "2MiB/h"])
def test_a_bad_bwlimit_is_a_one_line_usage_error(
    s3: FaultServer, tmp_path: Path, value: str
) -> None:
    done = _cli(s3, f"--bwlimit={value}", "s3://bucket/a.bin", str(tmp_path / "a.bin"))
    assert done.returncode == 2
    assert done.stderr.startswith("s3pull cp: error: argument --bwlimit: not a size")
    assert len(done.stderr.splitlines()) == 1
    assert leftovers(tmp_path) == []
    assert not s3.requests
