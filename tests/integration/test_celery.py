"""s3pull.celery against a real redis-server and real ``celery worker``
processes (prefork, 2 children each), downloading from the fault server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from s3pull import AsyncClient, RetryConfig, TransferConfig
from s3pull.celery import CeleryExecutor, make_app
from s3pull.testing import Fault, FaultServer

from ..support import leftovers, pattern
from .celery_fleet import RedisServer, Worker, redis_server, workers

pytestmark = pytest.mark.timeout(300)

FAST_RETRY = RetryConfig(max_attempts=2, backoff_base=0.001, backoff_cap=0.001)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def fleet(redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    """Two workers of two children each, on both queues."""
    with workers(redis.url, tmp_path_factory.mktemp("workers"), count=2) as started:
        yield started


async def fan_out(
    s3: FaultServer, redis: RedisServer, source: str, destination: Path, **options: Any
) -> Any:
    """``download_prefix`` over the fleet on ``redis``, as a submitter runs it."""
    config = TransferConfig(retry=FAST_RETRY)
    with closing(make_app(redis.url)) as app:
        run = CeleryExecutor(app, **options)
        async with AsyncClient(
            endpoint_url=s3.endpoint_url, config=config, executor=run, subscribers=[]
        ) as client:
            return await client.download_prefix(source, destination)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_thousand_keys_over_two_workers(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    s3.put_many("thousand", (f"k/{i:04d}.bin" for i in range(1000)), size=100)
    batch = asyncio.run(fan_out(s3, redis, "s3://thousand/k/", tmp_path, shard_items=50))
    assert batch.downloaded == 1000 and batch.failed == 0, batch.summary()
    assert batch.bytes == 100 * 1000
    files = files_under(tmp_path)
    assert sorted(files) == [f"{i:04d}.bin" for i in range(1000)]
    assert all(len(body) == 100 for body in files.values())
    gets = [r for r in s3.requests if r.method == "GET" and r.bucket == "thousand" and r.key]
    assert len(gets) == 1000  # one GET each: the listing's sizes travelled with the shards
    # Both workers took part.
    assert all("download_shard" in worker.text() for worker in fleet)


def test_a_failing_key_is_reported_and_the_rest_done(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    for i in range(30):
        s3.put_object("failing", f"p/{i:02d}", pattern(500 + i, seed=i))
    s3.add_fault("failing", "p/07", Fault.status(500))
    batch = asyncio.run(fan_out(s3, redis, "s3://failing/p/", tmp_path, shard_items=4))
    assert (batch.downloaded, batch.failed) == (29, 1), batch.summary()
    assert [f.source for f in batch.failures] == ["s3://failing/p/07"]
    assert batch.errors == {"ServerError": 1}
    assert sorted(files_under(tmp_path)) == [f"{i:02d}" for i in range(30) if i != 7]
    assert leftovers(tmp_path) == sorted(f"{i:02d}" for i in range(30) if i != 7)


def test_a_child_killed_mid_shard_has_its_shard_delivered_again(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    for i in range(12):
        s3.put_object("killed", f"p/{i:02d}", pattern(64 << 10, seed=i))
    body = pattern(2 << 20, seed=99)
    s3.put_object("killed", "p/slow", body)
    stalled = s3.add_fault("killed", "p/slow", Fault.stall(at_fraction=0.5, times=1), method="GET")

    done: list[Any] = []
    runner = threading.Thread(
        target=lambda: done.append(
            asyncio.run(fan_out(s3, redis, "s3://killed/p/", tmp_path, shard_items=4))
        )
    )
    runner.start()
    deadline = time.monotonic() + 60
    while not (stalled.fired and any(p.name.startswith(".") for p in tmp_path.iterdir())):
        assert time.monotonic() < deadline, "the stalled download never started"
        time.sleep(0.05)  # polling the server and the directory: nothing to wait on
    for worker in fleet:
        for child in worker.children():
            os.kill(child, signal.SIGKILL)  # the OOM killer's way
    runner.join(timeout=240)
    [batch] = done
    assert (batch.downloaded, batch.failed) == (13, 0), batch.summary()
    assert (tmp_path / "slow").read_bytes() == body
    assert leftovers(tmp_path) == sorted([*(f"{i:02d}" for i in range(12)), "slow"])


def test_a_task_delivered_twice_downloads_once(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    body = pattern(1 << 20, seed=7)
    s3.put_object("twice", "k", body)
    # A slow first byte, so that both copies run at the same time.
    s3.add_fault("twice", "k", Fault.delay(1.0), method="GET")
    item = {"id": 0, "path": str(tmp_path / "k"), "bucket": "twice", "key": "k"}
    item.update(size=len(body), etag=s3.get_object("twice", "k").etag, root=str(tmp_path))
    reply = "s3pull:reply:twice-test"
    kwargs = {"shard": {"items": [item]}, "reply": reply, "endpoint": endpoint(s3)}
    with closing(make_app(redis.url)) as app:
        for _ in range(2):
            app.send_task("s3pull.download_shard", kwargs=kwargs, task_id="dup", queue="s3pull")
        ends = 0
        statuses = []
        client = redis.client()
        while ends < 2:
            popped = client.blpop([reply], timeout=60)
            assert popped is not None, "a copy never ended"
            message = json.loads(popped[1])
            ends += bool(message.get("end"))
            statuses += [outcome["status"] for _, outcome in message.get("o", ())]
    assert statuses == ["downloaded", "downloaded"]  # the second copy repeats the first's
    gets = [r for r in s3.requests if r.bucket == "twice" and r.method == "GET"]
    assert len(gets) == 1
    assert (tmp_path / "k").read_bytes() == body
    assert leftovers(tmp_path) == ["k"]


def test_a_destination_holding_the_listed_version_is_not_downloaded_again(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    for i in range(5):
        s3.put_object("again", f"p/{i}", pattern(1000, seed=i))
    first = asyncio.run(fan_out(s3, redis, "s3://again/p/", tmp_path))
    assert first.downloaded == 5
    s3.put_object("again", "p/3", pattern(1000, seed=33))  # a new version, same size
    s3.reset_log()
    again = asyncio.run(fan_out(s3, redis, "s3://again/p/", tmp_path))
    assert (again.existing, again.downloaded) == (4, 1), again.summary()
    assert [r.key for r in s3.requests if r.method == "GET" and r.key] == ["p/3"]
    assert (tmp_path / "3").read_bytes() == pattern(1000, seed=33)


def endpoint(s3: FaultServer) -> dict[str, Any]:
    return {"endpoint_url": s3.endpoint_url, "addressing_style": "auto", "sign": True}
