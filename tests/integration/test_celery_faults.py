"""s3pull.celery under faults, each with a fleet of its own: routing by size,
soft time limits, and an object that kills every worker that downloads it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull import BreakerConfig, TransferConfig
from s3pull.celery import fleet_breakers
from s3pull.testing import Fault, FaultServer

from ..support import leftovers, pattern
from .celery_fleet import RedisServer, redis_server, workers
from .test_celery import FAST_RETRY, fan_out

pytestmark = pytest.mark.timeout(300)

MiB = 1 << 20


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def test_large_objects_reach_only_the_workers_of_the_large_queue(
    s3: FaultServer, redis: RedisServer, tmp_path: Path
) -> None:
    for i in range(3):
        s3.put_object("routed", f"p/large-{i}", pattern(2 * MiB, seed=i))
    for i in range(10):
        s3.put_object("routed", f"p/small-{i}", pattern(1000, seed=i))
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "out"
    with (
        workers(redis.url, logs / "small", queues=["s3pull"], concurrency=1) as [small],
        workers(redis.url, logs / "large", queues=["s3pull.large"], concurrency=1) as [large],
    ):
        batch = asyncio.run(
            fan_out(s3, redis, "s3://routed/p/", out, large_threshold=MiB, shard_bytes=MiB)
        )
    assert (batch.downloaded, batch.failed) == (13, 0), batch.summary()
    large_tasks = large.text().count("Task s3pull.download_shard[") // 2  # received, succeeded
    small_tasks = small.text().count("Task s3pull.download_shard[") // 2
    assert large_tasks == 3  # one shard each: larger than a shard's bytes
    assert small_tasks >= 1
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    assert sum(1 for size in sizes.values() if size == 2 * MiB) == 3


def test_a_soft_time_limit_of_s3pull_worker_cancels_the_download_and_leaves_no_temp_file(
    s3: FaultServer, redis: RedisServer, tmp_path: Path
) -> None:
    s3.put_object("limited", "p/fine", b"fine")
    s3.put_object("limited", "p/stuck", pattern(1 * MiB, seed=3))
    s3.add_fault("limited", "p/stuck", Fault.stall(at_fraction=0.5), method="GET")
    out = tmp_path / "out"
    extra = ["--soft-time-limit", "3"]
    with workers(redis.url, tmp_path / "logs", concurrency=1, extra=extra, cli=True):
        batch = asyncio.run(fan_out(s3, redis, "s3://limited/p/", out, shard_items=1))
    assert (batch.downloaded, batch.failed) == (1, 1), batch.summary()
    [failure] = batch.failures
    assert failure.source == "s3://limited/p/stuck"
    assert "soft time limit" in str(failure.error)
    assert leftovers(out) == ["fine"]  # the stalled download's temp file is gone


def test_an_object_that_kills_its_worker_is_dead_lettered(
    s3: FaultServer, redis: RedisServer, tmp_path: Path
) -> None:
    s3.put_object("poison", "p/ok", b"fine")
    s3.put_object("poison", "p/poison", pattern(1 * MiB, seed=5))
    # Whoever downloads it stalls half-way, and is killed there (as the OOM
    # killer kills a worker that a large object took past its memory).
    stall = s3.add_fault("poison", "p/poison", Fault.stall(at_fraction=0.5), method="GET")
    out = tmp_path / "out"
    env = {"S3PULL_MAX_DELIVERIES": "2"}
    with workers(redis.url, tmp_path / "logs", concurrency=1, env=env) as [worker]:
        stop = threading.Event()

        def killer() -> None:
            killed = 0
            while not stop.wait(0.05):  # polling the server: nothing to wait on
                if stall.fired > killed:
                    killed = stall.fired
                    time.sleep(0.2)  # half the body written
                    for child in worker.children():
                        os.kill(child, signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        try:
            batch = asyncio.run(fan_out(s3, redis, "s3://poison/p/", out, shard_items=1))
        finally:
            stop.set()
            thread.join()
    assert (batch.downloaded, batch.failed) == (1, 1), batch.summary()
    [failure] = batch.failures
    assert type(failure.error).__name__ == "DeadLetterError"
    assert "delivered 2 times" in str(failure.error)
    assert stall.fired == 2  # no third download
    [dead] = [json.loads(x) for x in redis.client().lrange("s3pull:dead", 0, -1)]
    assert dead["deliveries"] == 2
    assert [item["key"] for item in dead["shard"]["items"]] == ["p/poison"]
    assert leftovers(out) == ["ok"]


def test_a_breaker_opened_by_one_worker_holds_another_until_reset(
    s3: FaultServer, redis: RedisServer, tmp_path: Path
) -> None:
    s3.put_object("tripped", "p/good", b"good")
    s3.put_object("tripped", "p/bad", b"bad")
    s3.add_fault("tripped", "p/bad", Fault.status(500), method="GET")
    breakers = BreakerConfig(failures=1, cooldown=600)
    config = TransferConfig(retry=FAST_RETRY, breakers=breakers)
    store = fleet_breakers(redis.url, breakers)
    store.reset()

    def bad_gets() -> int:
        return sum(1 for r in s3.requests if r.key == "p/bad" and r.method == "GET")

    with workers(redis.url, tmp_path / "a", concurrency=1):
        first = asyncio.run(fan_out(s3, redis, "s3://tripped/p/", tmp_path / "1", config))
    assert first.errors == {"ServerError": 1}
    assert store.tracked() == ["s3://tripped/p/bad"]
    assert store.state("s3://tripped/p/bad")[0] == "open"
    tried = bad_gets()
    with workers(redis.url, tmp_path / "b", concurrency=1):
        second = asyncio.run(fan_out(s3, redis, "s3://tripped/p/", tmp_path / "2", config))
        assert second.errors == {"CircuitOpenError": 1}, second.summary()
        assert bad_gets() == tried  # worker B never asked for it
        store.reset("s3://tripped/p/bad")
        assert store.tracked() == []
        third = asyncio.run(fan_out(s3, redis, "s3://tripped/p/", tmp_path / "3", config))
    assert third.errors == {"ServerError": 1}
    assert bad_gets() > tried
    store.redis.close()


def test_an_endpoint_opened_in_one_process_holds_another(redis: RedisServer) -> None:
    from s3pull import EndpointUnavailableError, ServerError
    from s3pull.scheduling._breaker import Breakers
    from s3pull.scheduling._breaker_store import RedisBreakerStore

    config = BreakerConfig(endpoint_failures=2, endpoint_cooldown=60)
    stores = [RedisBreakerStore(redis.client(), config) for _ in range(2)]
    stores[0].reset()
    a, b = Breakers(config), Breakers(config)
    a.store, b.store = stores

    async def fail_on(breakers: Breakers) -> None:
        with pytest.raises(ServerError):
            async with breakers.endpoint("s3://sick"):
                raise ServerError("503 SlowDown", source="s3://sick/k")

    async def enter(breakers: Breakers) -> None:
        async with breakers.endpoint("s3://sick"):
            pass

    async def run() -> None:
        for _ in range(2):
            await fail_on(a)
        assert a.endpoint_state("s3://sick").state == "open"
        assert stores[1].tracked() == ["s3://sick"]
        with pytest.raises(TimeoutError):  # b waits out the cooldown a started
            await asyncio.wait_for(enter(b), 0.5)
        stores[0].endpoint_changed("s3://sick", "down", 3, "503 SlowDown")
        with pytest.raises(EndpointUnavailableError):
            await enter(b)

    asyncio.run(run())
    stores[0].reset()
    assert stores[1].tracked() == []
    for store in stores:
        store.redis.close()
