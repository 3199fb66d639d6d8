"""Bodies read on worker threads (``transport._blocking``) against the fault server.

The fault matrix already runs every fault through this path (downloads into a
file use it); these tests cover what is its own: keep-alive reuse, idle
connections the server closed, cancellation of a thread blocked in a read or
in a request, and progress reported from the threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull import AsyncClient, Client, RetryConfig, Subscriber, Timeouts, TransferConfig
from s3pull.testing import Fault, FaultServer, generate_bytes

from ..support import leftovers

MiB = 1024 * 1024
RETRY = RetryConfig(max_attempts=3, backoff_base=0.001, backoff_cap=0.001)
CONFIG = TransferConfig(part_size=1 * MiB, concurrency=2, retry=RETRY)


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.put_generated("bucket", "a.bin", 8 * MiB)
        server.put_generated("bucket", "b.bin", 4 * MiB + 5)
        yield server
        assert server.errors == []


def _ranged_gets(s3: FaultServer, key: str) -> list[int]:
    """The connection number of every ranged GET of ``key``."""
    return [r.connection for r in s3.requests if r.key == key and r.range_header]


def test_parts_reuse_kept_alive_connections(s3: FaultServer, tmp_path: Path) -> None:
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://bucket/a.bin", tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == generate_bytes("a.bin", 8 * MiB)
    connections = _ranged_gets(s3, "a.bin")
    assert len(connections) == 7 == result.attempts - 1  # part 0 came with the first, plain GET
    assert len(set(connections)) <= 2  # two workers, each on its own connection


def test_max_connections_bounds_the_connections(s3: FaultServer, tmp_path: Path) -> None:
    # Four streams wanted, two connections allowed: the other two wait to be
    # sent, rather than being sent on new connections and waiting for a thread.
    config = TransferConfig(part_size=1 * MiB, concurrency=4, max_connections=2, retry=RETRY)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        result = client.download_file("s3://bucket/a.bin", tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == generate_bytes("a.bin", 8 * MiB)
    assert result.attempts == 8
    # The first, plain GET's connection was closed before the parts began.
    assert len({r.connection for r in s3.requests if r.range_header}) <= 2


def test_connections_the_server_closed_while_idle_are_not_used(
    s3: FaultServer, tmp_path: Path
) -> None:
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        client.download_file("s3://bucket/a.bin", tmp_path / "a.bin")
        first = set(_ranged_gets(s3, "a.bin"))
        s3.close_connections()  # as a keep-alive timeout would
        time.sleep(0.2)  # for the FINs to arrive
        result = client.download_file("s3://bucket/b.bin", tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == generate_bytes("b.bin", 4 * MiB + 5)
    # Not one request was sent into a closed connection and retried.
    assert result.attempts == 5
    assert not first & set(_ranged_gets(s3, "b.bin"))


async def test_cancelling_stops_threads_blocked_in_a_read(s3: FaultServer, tmp_path: Path) -> None:
    # Every GET sends half its part, then holds the connection open; only a
    # 30 s read timeout would end that wait.
    s3.add_fault("bucket", "a.bin", Fault.stall(at_fraction=0.5), method="GET")
    config = TransferConfig(part_size=1 * MiB, concurrency=4, timeouts=Timeouts(30))
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        task = asyncio.create_task(client.download_file("s3://bucket/a.bin", tmp_path / "a.bin"))
        # Every worker is blocked in a read once half of each of four parts is out.
        while s3.bytes_sent("bucket", "a.bin") < 4 * MiB // 2:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.02)
        cancelled = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        # Not the 30 s read timeout (a blocked loop would not even let
        # wait_for fire, so the clock is the witness).
        assert time.monotonic() - cancelled < 10
    assert leftovers(tmp_path) == []
    deadline = time.monotonic() + 10
    while [t for t in threading.enumerate() if t.name.startswith("s3pull-body")]:
        assert time.monotonic() < deadline, "a body thread is still blocked"
        await asyncio.sleep(0.02)


async def test_cancelling_stops_threads_waiting_for_an_answer(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault("bucket", "a.bin", Fault.hang(), method="GET", ranged=True)
    config = TransferConfig(part_size=1 * MiB, concurrency=4, timeouts=Timeouts(30))
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        task = asyncio.create_task(client.download_file("s3://bucket/a.bin", tmp_path / "a.bin"))
        await asyncio.to_thread(s3.wait_for_requests, 1)  # the first, plain GET
        await asyncio.sleep(0.3)  # four GETs sent, none answered
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        # The requests were cut, not left to run into the 30 s first-byte
        # timeout: the server sees the four GETs end now.
        records = await asyncio.to_thread(s3.wait_for_requests, 5)
    assert [r.outcome for r in records if r.range_header] == ["hung"] * 4
    assert leftovers(tmp_path) == []


class _Progress(Subscriber):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_progress(self, source: str, done: int, total: int) -> None:
        self.seen.append((done, total))


def test_progress_is_reported_while_a_thread_reads_a_part(s3: FaultServer, tmp_path: Path) -> None:
    # One 8 MiB part: all progress but the last comes from the worker thread.
    # It posts once a MiB has come since its last post; a read fills at most
    # stream_cost (768 KiB), so a post comes at least every 1.75 MiB.
    config = TransferConfig(part_size=8 * MiB, retry=RETRY)
    progress = _Progress()
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[progress]) as client:
        client.download_file("s3://bucket/a.bin", tmp_path / "a.bin")
    dones = [done for done, _ in progress.seen if done > 0]
    assert dones == sorted(dones)  # reported on the loop thread, in order
    assert len(dones) >= 5  # 4 posts in 8 MiB at the least, and the end
    assert progress.seen[-1] == (8 * MiB, 8 * MiB)
