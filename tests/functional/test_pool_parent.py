"""``processes="auto"``: the parent downloads its own share of the pool's
shards while worker processes start and then run theirs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from s3pull import AsyncClient, Client, S3PullError, Subscriber, TransferConfig
from s3pull._config import BreakerConfig
from s3pull._events import Events
from s3pull._results import EXISTING, FAILED, ObjectOutcome
from s3pull._source import S3Source
from s3pull.executors import InProcess, PoolSetup, ShardOptions, _pool
from s3pull.planning import Shard, holdable
from s3pull.scheduling import BatchItem, Breakers, BreakerState, MemoryBudget
from s3pull.testing import Fault, FaultServer
from s3pull.transport import ListedObject

from ..support import pattern
from .test_many import cli_env, files_under
from .test_pool import batch_killing_workers, mixed_bucket, run_prefix, slow_bucket, workers_of


@pytest.fixture(autouse=True)
def small_batches_are_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards of a few items, ``"auto"`` deciding after ten objects, two cores
    (so one worker process, and the parent)."""
    monkeypatch.setattr(_pool, "SHARD_ITEMS", 4)
    monkeypatch.setattr(_pool, "AUTO_MIN_OBJECTS", 10)
    monkeypatch.setattr(_pool, "cores", lambda: 2)


class Shares:
    """Counts the items the parent and the worker processes are handed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parent = 0
        self.workers = 0
        self.spawned = 0
        parent_take, worker_take, spawn = _pool._Parent.take, _pool._Worker.take, _pool._spawn

        async def to_parent(share: Any, shard: Shard) -> None:
            self.parent += len(shard.items)
            await parent_take(share, shard)

        async def to_worker(share: Any, shard: Shard) -> None:
            self.workers += len(shard.items)
            await worker_take(share, shard)

        async def spawned() -> Any:
            self.spawned += 1
            return await spawn()

        monkeypatch.setattr(_pool._Parent, "take", to_parent)
        monkeypatch.setattr(_pool._Worker, "take", to_worker)
        monkeypatch.setattr(_pool, "_spawn", spawned)


class BudgetWatcher(Subscriber):
    """The parent's budget as each object finishes (its own, or a worker's
    replayed)."""

    def __init__(self) -> None:
        self.budget: MemoryBudget | None = None
        self.seen: list[tuple[int, int]] = []

    def on_done(self, result: Any) -> None:
        assert self.budget is not None
        self.seen.append((self.budget.used, self.budget.holdable))


def test_auto_lands_what_the_in_process_batch_does(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed_bucket(s3)
    alone, alone_outcomes = run_prefix(s3, tmp_path / "one", 1)
    shares = Shares(monkeypatch)
    pooled, pooled_outcomes = run_prefix(s3, tmp_path / "auto", "auto")

    assert shares.spawned == 1
    assert shares.parent > 0  # ready at once, it takes the first shards
    assert shares.parent + shares.workers == 43 + 1 + 2  # all but the 4 refused keys
    assert files_under(tmp_path / "auto") == files_under(tmp_path / "one")
    assert pooled_outcomes == alone_outcomes
    assert (pooled.downloaded, pooled.directories, pooled.failed) == (43, 1, 6)
    assert pooled.errors == alone.errors


def test_the_parent_keeps_one_share_of_the_budget_and_lends_the_rest(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow objects: the worker is ready long before the batch ends, so both
    # the parent and the worker download.
    slow_bucket(s3, 40)
    shares = Shares(monkeypatch)
    watcher = BudgetWatcher()
    config = TransferConfig(processes="auto", memory_limit=64 << 20)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[watcher]) as client:
        budget = watcher.budget = client._client().budget
        whole = budget.holdable
        batch = client.download_prefix("s3://bucket/s/", tmp_path)
        after = (budget.used, budget.holdable)

    assert batch.ok and batch.downloaded == 40
    assert shares.parent > 0 and shares.workers > 0
    assert shares.parent + shares.workers == 40
    share = (64 << 20) // 2
    # Every object finished (in the parent, or in the worker and replayed
    # here) while the worker's share was lent away.
    assert len(watcher.seen) == 40
    for used, holdable_now in watcher.seen:
        assert used >= (64 << 20) - share
        assert holdable_now == holdable(share, config.stream_cost)
    assert after == (0, whole)
    assert files_under(tmp_path) == {f"{i:02d}.bin": pattern(64 * 1024, seed=i) for i in range(40)}


async def test_a_busy_budget_lends_nothing_and_the_batch_goes_to_workers_only(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        s3.put_object("bucket", f"k/{i:02d}", pattern(500, seed=i))
    shares = Shares(monkeypatch)
    config = TransferConfig(processes="auto")
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        async with client.budget.reserve(1 << 20):  # another of the client's jobs
            batch = await client.download_prefix("s3://bucket/k/", tmp_path)
        assert (client.budget.used, client.budget.holdable) == (0, holdable_of(config))
    assert (shares.spawned, shares.parent) == (2, 0)  # one worker per core
    assert batch.ok and batch.downloaded == 20
    assert files_under(tmp_path) == {f"{i:02d}": pattern(500, seed=i) for i in range(20)}


def holdable_of(config: TransferConfig) -> int:
    return holdable(config.memory_limit, config.stream_cost)


def test_a_worker_killed_mid_shard_leaves_its_items_to_the_parent(
    s3: FaultServer, tmp_path: Path
) -> None:
    slow_bucket(s3, 24)
    batch = batch_killing_workers(s3, tmp_path / "out", 1, processes="auto", workers=1)
    assert batch.ok, batch.failures
    assert batch.downloaded == 24
    expected = {f"{i:02d}.bin": pattern(64 * 1024, seed=i) for i in range(24)}
    assert files_under(tmp_path / "out") == expected  # and no temp file


def test_when_no_worker_can_start_the_parent_runs_the_whole_batch(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        s3.put_object("bucket", f"k/{i:02d}", pattern(500, seed=i))
    # Slow answers: the parent's GETs are still out when the worker has died.
    s3.add_fault("bucket", None, Fault.delay(1.0), method="GET")
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-python-here"))
    shares = Shares(monkeypatch)
    watcher = BudgetWatcher()
    config = TransferConfig(processes="auto")
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[watcher]) as client:
        budget = watcher.budget = client._client().budget
        whole = budget.holdable
        batch = client.download_prefix("s3://bucket/k/", tmp_path / "out")
    assert (shares.spawned, shares.workers, shares.parent) == (1, 0, 20)
    assert batch.ok and batch.downloaded == 20
    assert files_under(tmp_path / "out") == {f"{i:02d}": pattern(500, seed=i) for i in range(20)}
    # The worker's share came back once it had died: the parent finished on
    # the whole budget.
    assert len(watcher.seen) == 20
    assert all(held == whole for _, held in watcher.seen)


def test_a_budget_too_small_to_share_keeps_auto_in_process(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 MiB over two cores is 512 KiB a share, less than one 768 KiB stream:
    # the batch fits in one process, so auto runs it there.
    for i in range(20):
        s3.put_object("bucket", f"k/{i:02d}", pattern(500, seed=i))
    shares = Shares(monkeypatch)
    config = TransferConfig(processes="auto", memory_limit="1MiB")
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/k/", tmp_path)
    assert (shares.spawned, shares.workers, shares.parent) == (0, 0, 0)
    assert batch.ok and batch.downloaded == 20
    assert files_under(tmp_path) == {f"{i:02d}": pattern(500, seed=i) for i in range(20)}


def test_when_no_worker_process_can_be_made_the_parent_gets_its_budget_back(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        s3.put_object("bucket", f"k/{i:02d}", pattern(500, seed=i))

    async def no_process() -> Any:
        raise S3PullError("cannot start a worker process: Resource temporarily unavailable")

    monkeypatch.setattr(_pool, "_spawn", no_process)
    watcher = BudgetWatcher()
    config = TransferConfig(processes="auto")
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[watcher]) as client:
        budget = watcher.budget = client._client().budget
        whole = budget.holdable
        batch = client.download_prefix("s3://bucket/k/", tmp_path)
    assert batch.ok and batch.downloaded == 20
    # Nothing lent while the parent ran the whole batch alone.
    assert len(watcher.seen) == 20
    assert all(used < config.memory_limit // 2 and held == whole for used, held in watcher.seen)
    assert (budget.used, budget.holdable) == (0, whole)


def pool_setup(endpoint_url: str = "http://127.0.0.1:9") -> PoolSetup:
    return PoolSetup(
        config=TransferConfig(),
        endpoint={"endpoint_url": endpoint_url},
        events=Events([]),
        options=ShardOptions(),
    )


def listed_items(tmp_path: Path, count: int) -> AsyncIterator[BatchItem]:
    async def items() -> AsyncIterator[BatchItem]:
        for i in range(count):
            key = f"d/{i:02d}"
            yield BatchItem(S3Source("bucket", key), tmp_path / key, listed=ListedObject(key, 4))

    return items()


async def test_an_endpoint_the_parent_found_down_is_down_in_its_worker(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(12):
        s3.put_object("bucket", f"d/{i:02d}", b"fine")
    shares = Shares(monkeypatch)
    breakers = Breakers(BreakerConfig())

    async def run(items: AsyncIterable[BatchItem]) -> AsyncGenerator[ObjectOutcome, None]:
        # The parent's share: its probe of the bucket failed, as Breakers
        # tells it. It stays busy, so the real worker gets the last shard.
        async for item in items:
            assert breakers.on_endpoint is not None
            breakers.on_endpoint("s3://bucket", "down", BreakerState("open", 10, "503", None, None))
            await asyncio.sleep(0.2)
            yield ObjectOutcome(item.source.redacted, item.destination, EXISTING)

    own = InProcess(run, MemoryBudget(64 << 20), breakers)
    pool = _pool.Pool(pool_setup(s3.endpoint_url), 1, parent=own)
    outcomes = [outcome async for outcome in pool.run(listed_items(tmp_path, 12))]

    assert shares.workers > 0 and shares.parent + shares.workers == 12
    refused = [o for o in outcomes if o.status == FAILED]
    assert len(refused) == shares.workers
    assert {type(o.error).__name__ for o in refused} == {"EndpointUnavailableError"}
    assert [r for r in s3.requests if r.method == "GET"] == []  # not one request
    assert breakers.on_endpoint is None  # as it was before the pool


async def test_a_workers_endpoint_change_reaches_the_parents_breakers(tmp_path: Path) -> None:
    breakers = Breakers(BreakerConfig())
    told: list[Any] = []

    class Pipe:
        def write(self, data: bytes) -> None:
            told.append(json.loads(data))

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    async def run(items: AsyncIterable[BatchItem]) -> AsyncGenerator[ObjectOutcome, None]:
        async for item in items:
            yield ObjectOutcome(item.source.redacted, item.destination, EXISTING)

    # What the pool does with a line from the worker that saw the change.
    worker = _pool._Worker(SimpleNamespace(stdin=Pipe(), returncode=0))  # type: ignore[arg-type]
    own = InProcess(run, MemoryBudget(1 << 20), breakers)
    pool = _pool.Pool(pool_setup(), 0, parent=own)
    pool.workers.append(worker)
    pool._share_breaker(worker, ["s3://other", "down", 3, "timed out"])
    adopted = breakers.endpoint_state("s3://other")
    assert (adopted.state, adopted.failures, adopted.last_failure) == ("open", 3, "timed out")
    assert told == []  # not echoed back to the worker that said it


def test_ctrl_c_of_an_auto_run_stops_the_parents_downloads_and_the_worker(
    s3: FaultServer, tmp_path: Path
) -> None:
    # A real command line with its real threshold: a batch of one full
    # listing page and a few more, two of them never finishing.
    count = 1010
    s3.put_many("bucket", (f"p/{i:04d}" for i in range(count)), size=64)
    for i in (7, 1003):
        s3.add_fault("bucket", f"p/{i:04d}", Fault.stall(at_fraction=0.5), method="GET")
    command = [sys.executable, "-m", "s3pull", "cp", "-r", "s3://bucket/p/", str(tmp_path), "-q"]
    with subprocess.Popen(command, env=cli_env(s3), stderr=subprocess.PIPE, text=True) as child:
        deadline = time.monotonic() + 60
        while len([n for n in os.listdir(tmp_path) if not n.startswith(".")]) < count - 2:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
        workers = workers_of(child.pid)
        assert len(workers) >= 1
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "interrupted" in stderr
    names = sorted(os.listdir(tmp_path))
    assert names == [f"{i:04d}" for i in range(count) if i not in (7, 1003)]
    for worker in workers:
        assert not Path(f"/proc/{worker}").exists(), "a worker outlived its parent"
