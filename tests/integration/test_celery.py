"""s3pull.celery against a real redis-server and real ``celery worker``
processes (prefork, 2 children each), downloading from the fault server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from s3pull import AsyncClient, DownloadResult, RetryConfig, Subscriber, TransferConfig
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
    s3: FaultServer,
    redis: RedisServer,
    source: str,
    destination: Path,
    config: TransferConfig | None = None,
    **options: Any,
) -> Any:
    """``download_prefix`` over the fleet on ``redis``, as a submitter runs it."""
    config = config or TransferConfig(retry=FAST_RETRY)
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


class Heard(Subscriber):
    """Every queued, progress and done event, in the order heard."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def on_queued(self, source: str, size: int) -> None:
        self.events.append(("queued", source, size))

    def on_progress(self, source: str, done: int, total: int) -> None:
        self.events.append(("progress", source, done))

    def on_done(self, result: DownloadResult) -> None:
        self.events.append(("done", result.source, result.bytes))


def test_a_large_object_shows_its_progress_while_a_worker_downloads_it(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    size = 4 << 20
    body = pattern(size, seed=5)
    s3.put_object("progress", "big/object.bin", body)
    s3.put_many("progress", (f"big/small-{i}" for i in range(3)), size=100)
    # Sent in 32 slices over ~1.6 s: long enough for its progress to be told
    # several times before it is done.
    dripping = Fault.drip(chunk=128 << 10, interval=0.05)
    s3.add_fault("progress", "big/object.bin", dripping, method="GET")
    heard = Heard()

    async def run() -> Any:
        with closing(make_app(redis.url)) as app:
            async with AsyncClient(
                endpoint_url=s3.endpoint_url,
                config=TransferConfig(retry=FAST_RETRY),
                executor=CeleryExecutor(app),
                subscribers=[heard],
            ) as client:
                return await client.download_prefix("s3://progress/big/", tmp_path)

    batch = asyncio.run(run())
    assert batch.downloaded == 4, batch.summary()
    assert (tmp_path / "object.bin").read_bytes() == body
    source = "s3://progress/big/object.bin"
    mine = [event for event in heard.events if event[1] == source]
    assert mine[0] == ("queued", source, size)
    assert mine[-1] == ("done", source, size)
    assert {kind for kind, _, _ in mine[1:-1]} == {"progress"}
    done = [value for _, _, value in mine[1:-1]]
    assert len(done) >= 2, mine  # told while in flight, not only at the end
    assert done == sorted(set(done)) and done[0] > 0 and done[-1] <= size
    # Every object is heard of once, queued then done, as in process.
    for i in range(3):
        small = [kind for kind, name, _ in heard.events if name == f"s3://progress/big/small-{i}"]
        assert small[0] == "queued" and small[-1] == "done" and small.count("done") == 1


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


def test_the_cli_runs_a_batch_on_the_fleet_as_it_runs_one_here(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    for i in range(20):
        s3.put_object("cli", f"p/{i:02d}", pattern(300 + i, seed=i))
    s3.add_fault("cli", "p/13", Fault.status(404, code="NoSuchKey"))
    code, out, err = run_cli(
        s3, "cp", "-r", "s3://cli/p/", str(tmp_path / "fleet"), "--celery", redis.url, "--json"
    )
    local_code, local_out, _ = run_cli(
        s3, "cp", "-r", "s3://cli/p/", str(tmp_path / "here"), "--json"
    )
    assert (code, local_code) == (1, 1), err
    fleet_lines = statuses(out)
    assert fleet_lines == statuses(local_out) and len(fleet_lines) == 20
    assert "19 downloaded, 1 failed (NotFoundError: 1)" in err
    assert files_under(tmp_path / "fleet") == files_under(tmp_path / "here")

    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"s3://cli/p/{i:02d}\n" for i in (1, 2, 3)))
    code, _, err = run_cli(
        s3, "cp", "--from-file", str(keys), str(tmp_path / "list"), "--celery", redis.url
    )
    assert code == 0, err
    assert sorted(files_under(tmp_path / "list")) == ["p/01", "p/02", "p/03"]  # as here


def test_the_breakers_command_lists_and_resets_the_fleet_breakers(
    s3: FaultServer, redis: RedisServer, tmp_path: Path
) -> None:
    from s3pull.celery import fleet_breakers

    store = fleet_breakers(redis.url)
    store.reset()
    store.failed("s3://b/broken", "ServerError: 500 InternalError")
    code, out, _ = run_cli(s3, "breakers", "--redis", redis.url, "--json")
    assert code == 0
    [line] = map(json.loads, out.splitlines())
    assert (line["key"], line["state"], line["failures"]) == ("s3://b/broken", "closed", 1)
    code, _, err = run_cli(s3, "breakers", "--redis", redis.url, "--all")
    assert code == 0, err
    assert store.tracked() == []
    store.redis.close()


def statuses(jsonl: str) -> list[tuple[str, str]]:
    return sorted((line["source"], line["status"]) for line in map(json.loads, jsonl.splitlines()))


def run_cli(s3: FaultServer, *args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        env=dict(os.environ, AWS_ENDPOINT_URL=s3.endpoint_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_an_inventory_downloads_over_the_fleet_as_it_does_here(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    from ..functional.test_inventory import MANIFEST, _put_downloadable_inventory

    objects = _put_downloadable_inventory(s3)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        s3, "inventory", MANIFEST, "--download", str(out), "--count", "--celery", redis.url
    )
    assert code == 1, err  # one listed object is gone, one key is hostile
    assert stdout.split() == [str(len(objects) + 2)]
    assert "40 downloaded, 2 failed (NotFoundError: 1, UnsafePathError: 1)" in err
    assert files_under(out) == objects


def test_the_fanout_task_plans_in_a_worker_and_merges_one_summary(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    for i in range(25):
        s3.put_object("fanned", f"p/{i:02d}", pattern(200, seed=i))
    s3.put_object("fanned", "p/skip.tmp", b"excluded")
    s3.add_fault("fanned", "p/04", Fault.status(404, code="NoSuchKey"))
    with closing(make_app(redis.url)) as app:
        result = app.send_task(
            "s3pull.fanout",
            kwargs={
                "destination": str(tmp_path),
                "source": "s3://fanned/p/",
                "filters": [["exclude", "*.tmp"]],
                "endpoint": endpoint(s3),
            },
            queue="s3pull",
        )
        summary = result.get(timeout=120)
    assert (summary["downloaded"], summary["failed"]) == (24, 1)
    assert summary["errors"] == {"NotFoundError": 1}
    assert sorted(files_under(tmp_path)) == [f"{i:02d}" for i in range(25) if i != 4]


def test_pdf_tasks_split_and_extract_on_a_worker_with_each_part_a_result(
    s3: FaultServer, redis: RedisServer, fleet: list[Worker], tmp_path: Path
) -> None:
    from s3pull.celery import route_by_size
    from s3pull.testing import page_text, write_pdf

    write_pdf(tmp_path / "contract.pdf", 12)
    s3.put_object("legal", "contract.pdf", (tmp_path / "contract.pdf").read_bytes())
    common = {"source": "s3://legal/contract.pdf", "endpoint": endpoint(s3), "size": 1 << 30}
    with closing(make_app(redis.url, task_routes=(route_by_size(),))) as app:
        split = app.send_task(
            "s3pull.pdf_split",
            kwargs={**common, "destination": str(tmp_path / "parts"), "pages_per_part": 5},
        )
        text = app.send_task(
            "s3pull.pdf_text", kwargs={**common, "destination": str(tmp_path / "c.txt")}
        )
        bad = app.send_task(
            "s3pull.pdf_text",
            kwargs={**common, "destination": str(tmp_path / "x.txt"), "pages": "13"},
        )
        summary, written = split.get(timeout=120), text.get(timeout=120)
        with pytest.raises(Exception, match="outside the document") as raised:
            bad.get(timeout=120)
    assert type(raised.value).__name__ == "PageRangeError"
    assert [(p["first"], p["last"]) for p in summary["parts"]] == [(1, 5), (6, 10), (11, 12)]
    assert summary["pages"] == 12
    assert sorted(leftovers(tmp_path / "parts")) == [
        "contract.p0001-0005.pdf",
        "contract.p0006-0010.pdf",
        "contract.p0011-0012.pdf",
    ]
    assert written["pages"] == 12
    assert (tmp_path / "c.txt").read_text().split("\f")[11] == page_text(12)
    assert not (tmp_path / "x.txt").exists()
