"""The local process pool against the fault server: real worker processes
land what the in-process batch lands, and survive the deaths of workers."""

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
from pathlib import Path
from typing import Any

import pytest

from s3pull import BatchResult, Client, ConfigError, RetryConfig, S3PullError, TransferConfig
from s3pull.executors import _pool
from s3pull.testing import Fault, FaultServer

from ..support import pattern
from .test_many import cli_env, files_under

MiB = 1024 * 1024
FAST_RETRY = RetryConfig(max_attempts=2, backoff_base=0.001, backoff_cap=0.001)


@pytest.fixture(autouse=True)
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards of a few items, so that even a small batch is many shards."""
    monkeypatch.setattr(_pool, "SHARD_ITEMS", 4)


def mixed_bucket(s3: FaultServer) -> None:
    """Small and multi-part objects, a directory marker, failures, clashes and
    hostile keys."""
    for i in range(40):
        s3.put_object("bucket", f"p/small/{i:02d}.bin", pattern(1000 + i, seed=i))
    s3.put_object("bucket", "p/big.bin", pattern(3 * MiB + 5, seed=99))
    s3.put_object("bucket", "p/dir/", b"")
    for key in ("a", "a/b", "Report.txt", "report.txt", "../escape.txt", "x/../../up.txt"):
        s3.put_object("bucket", f"p/{key}", key.encode())
    s3.put_object("bucket", "p/missing.bin", b"soon gone")
    s3.add_fault("bucket", "p/missing.bin", Fault.status(404, code="NoSuchKey"))
    s3.put_object("bucket", "p/broken.bin", b"never")
    s3.add_fault("bucket", "p/broken.bin", Fault.status(500))


def comparable(outcome: dict[str, Any], root: Path) -> dict[str, Any]:
    """An outcome's JSON without what differs from run to run (time, the root)."""
    data = dict(outcome, seconds=None)
    if data["path"] is not None:
        data["path"] = os.path.relpath(data["path"], root)
    if data["error"] is not None:
        data["error"] = {k: v for k, v in data["error"].items() if k != "message"}
    return data


def run_prefix(
    s3: FaultServer, out: Path, processes: int | str, **options: bool
) -> tuple[BatchResult, list[Any]]:
    config = TransferConfig(part_size=1 * MiB, retry=FAST_RETRY, processes=processes)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        outcomes = list(client.iter_download_prefix("s3://bucket/p/", out, **options))
        batch = BatchResult()
        for outcome in outcomes:
            batch.add(outcome)
    return batch, sorted((comparable(o.to_json(), out) for o in outcomes), key=str)


def test_a_sharded_batch_lands_what_the_in_process_one_does(
    s3: FaultServer, tmp_path: Path
) -> None:
    mixed_bucket(s3)
    alone, alone_outcomes = run_prefix(s3, tmp_path / "one", 1)
    pooled, pooled_outcomes = run_prefix(s3, tmp_path / "pool", 2)

    assert files_under(tmp_path / "pool") == files_under(tmp_path / "one")
    assert (tmp_path / "pool/dir").is_dir()
    assert pooled_outcomes == alone_outcomes
    assert (pooled.downloaded, pooled.directories, pooled.failed) == (43, 1, 6)
    assert (
        pooled.errors
        == alone.errors
        == {
            "NotFoundError": 1,
            "ServerError": 1,
            "UnsafePathError": 4,
        }
    )
    assert not pooled.ok
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "up.txt").exists()


def test_a_listing_that_breaks_half_way_ends_a_pooled_batch_with_its_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_many("bucket", (f"k{i:04d}" for i in range(1500)), size=8)
    s3.add_list_fault("bucket", Fault.repeat_token(times=1, skip=1))
    config = TransferConfig(processes=2)
    with (
        Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client,
        pytest.raises(S3PullError, match="continuation token") as caught,
    ):
        client.download_prefix("s3://bucket/", tmp_path)
    assert type(caught.value).__name__ == "ProtocolError"
    # what was listed before the listing broke still ran, over the workers
    assert len(files_under(tmp_path)) >= 1000


def test_dry_runs_and_skip_existing_plan_alike_over_processes(
    s3: FaultServer, tmp_path: Path
) -> None:
    mixed_bucket(s3)
    for name in ("one", "pool"):  # half of the small objects are there already
        for i in range(0, 40, 2):
            path = tmp_path / name / "small" / f"{i:02d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pattern(1000 + i, seed=i))
    before = files_under(tmp_path)
    _, alone = run_prefix(s3, tmp_path / "one", 1, dry_run=True, skip_existing=True)
    batch, pooled = run_prefix(s3, tmp_path / "pool", 2, dry_run=True, skip_existing=True)
    assert pooled == alone
    assert (batch.planned, batch.existing, batch.failed) == (26, 20, 4)  # 4 keys refused
    assert files_under(tmp_path) == before  # nothing written


def test_keys_and_pairs_of_download_many_over_processes(s3: FaultServer, tmp_path: Path) -> None:
    for i in range(10):
        s3.put_object("bucket", f"x/{i}.bin", pattern(100, seed=i))

    def items() -> Iterator[object]:
        for i in range(9):
            yield f"s3://bucket/x/{i}.bin"
        yield ("s3://bucket/x/9.bin", tmp_path / "renamed.bin")
        yield "s3://bucket/../up.bin"

    config = TransferConfig(processes=2)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_many(items(), tmp_path / "keys")  # type: ignore[arg-type]
    assert (batch.downloaded, batch.failed) == (10, 1)
    assert (tmp_path / "renamed.bin").read_bytes() == pattern(100, seed=9)
    assert (tmp_path / "keys/x/3.bin").read_bytes() == pattern(100, seed=3)


def test_events_of_every_worker_reach_the_parents_subscribers(
    s3: FaultServer, tmp_path: Path
) -> None:
    from s3pull import Subscriber

    for i in range(12):
        s3.put_object("bucket", f"e/{i}", pattern(5000, seed=i))

    class Recorder(Subscriber):
        def __init__(self) -> None:
            self.done: list[str] = []
            self.listed: list[tuple[int, int | None]] = []

        def on_done(self, result: Any) -> None:
            self.done.append(result.source)

        def on_listed(self, objects: int, size: int | None) -> None:
            self.listed.append((objects, size))

    recorder = Recorder()
    config = TransferConfig(processes=2)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[recorder]) as client:
        batch = client.download_prefix("s3://bucket/e/", tmp_path)
    assert batch.downloaded == 12
    assert sorted(recorder.done) == sorted(f"s3://bucket/e/{i}" for i in range(12))
    assert recorder.listed == [(12, 12 * 5000)]


def test_processes_is_validated() -> None:
    for bad in (0, -1, True, "many", 2.0):
        with pytest.raises(ConfigError, match="processes"):
            TransferConfig(processes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot be shared"):
        TransferConfig(memory_limit="1MiB", processes=2)


# Worker deaths -------------------------------------------------------------------


def workers_of(pid: int) -> list[int]:
    """The worker processes (children) of ``pid``."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def slow_bucket(s3: FaultServer, count: int) -> None:
    """Objects whose bodies take ~0.5 s each: workers are mid-download for a while."""
    for i in range(count):
        key = f"s/{i:02d}.bin"
        s3.put_object("bucket", key, pattern(64 * 1024, seed=i))
        s3.add_fault("bucket", key, Fault.drip(chunk=8192, interval=0.06), method="GET")


def holds_a_temp_file(pid: int) -> bool:
    """Whether process ``pid`` has a temp file of a download open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).endswith(".part") for fd in fds.iterdir())
    except OSError:  # an fd closed while we looked
        return False


def batch_killing_workers(
    s3: FaultServer, out: Path, kill: int, processes: int | str = 2, workers: int = 2
) -> BatchResult:
    """Run a slow batch over ``workers`` worker processes and SIGKILL ``kill``
    of them once each is writing a temp file."""
    results: list[BatchResult] = []

    def run() -> None:
        config = TransferConfig(processes=processes)
        with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
            results.append(client.download_prefix("s3://bucket/s/", out))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the workers never started downloading"
        running = workers_of(os.getpid())
        if len(running) >= workers and all(holds_a_temp_file(pid) for pid in running[:kill]):
            break
        time.sleep(0.02)
    for worker in running[:kill]:
        os.kill(worker, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    [batch] = results
    return batch


def test_a_worker_killed_mid_shard_hands_its_items_to_another(
    s3: FaultServer, tmp_path: Path
) -> None:
    slow_bucket(s3, 24)
    batch = batch_killing_workers(s3, tmp_path / "out", 1)
    assert batch.ok, batch.failures
    assert batch.downloaded == 24
    expected = {f"{i:02d}.bin": pattern(64 * 1024, seed=i) for i in range(24)}
    assert files_under(tmp_path / "out") == expected  # and no temp file


def test_items_of_a_killed_worker_fail_when_no_worker_is_left(
    s3: FaultServer, tmp_path: Path
) -> None:
    slow_bucket(s3, 24)
    out = tmp_path / "out"
    batch = batch_killing_workers(s3, out, 2)
    assert batch.failed == 24 - batch.downloaded > 0
    assert set(batch.errors) == {"S3PullError"}
    assert all("killed by SIGKILL" in str(f.error) for f in batch.failures)
    names = [path.name for path in out.rglob("*")] if out.exists() else []
    assert not [name for name in names if name.startswith(".")], "temp files left"
    assert all(name.endswith(".bin") for name in names)


def test_a_worker_lost_before_it_was_ready_leaves_the_batch_to_the_others(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second "worker" exits (code 3) once the first is downloading:
    # nothing was ever sent to it, so the first one runs the whole batch.
    slow_bucket(s3, 24)
    out = tmp_path / "out"
    spawn = _pool._spawn
    started: list[object] = []
    dies_once_others_work = (
        "import pathlib, sys, time\n"
        f"while not list(pathlib.Path({str(out)!r}).rglob('*.part')): time.sleep(0.02)\n"
        "sys.exit(3)\n"
    )

    async def one_real_worker() -> Any:
        started.append(None)
        if len(started) == 1:
            return await spawn()
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            dies_once_others_work,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    monkeypatch.setattr(_pool, "_spawn", one_real_worker)
    config = TransferConfig(processes=2)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/s/", out)
    assert len(started) == 2
    assert (batch.downloaded, batch.failed) == (24, 0)
    assert sorted(path.name for path in out.rglob("*")) == [f"{i:02d}.bin" for i in range(24)]


def test_a_worker_that_cannot_start_is_one_clear_error(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "k/1", b"1")
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-python-here"))
    config = TransferConfig(processes=2)
    with (
        Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client,
        pytest.raises(S3PullError, match=r"cannot start a worker process: worker process \d+ "),
    ):
        client.download_prefix("s3://bucket/k/", tmp_path / "out")
    assert not (tmp_path / "out" / "1").exists()


# The command line ------------------------------------------------------------------


def run_cli(s3: FaultServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        env=cli_env(s3),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_json_lines_of_every_worker_parse_and_count_exactly(
    s3: FaultServer, tmp_path: Path
) -> None:
    mixed_bucket(s3)
    runs = {}
    for processes in ("1", "2"):
        out = tmp_path / processes
        args = ["cp", "-r", "s3://bucket/p/", str(out), "--json", "--processes", processes]
        done = run_cli(s3, *args)
        assert done.returncode == 1, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(lines) == 50
        runs[processes] = sorted((comparable(line, out) for line in lines), key=str)
        summary = done.stderr.strip().splitlines()[-1]
        assert summary.startswith("s3pull: 43 downloaded, 1 directories, 6 failed"), summary
    assert runs["1"] == runs["2"]


def test_cli_processes_needs_a_batch(s3: FaultServer, tmp_path: Path) -> None:
    done = run_cli(s3, "cp", "s3://bucket/k", str(tmp_path), "--processes", "2")
    assert done.returncode == 2
    assert "--processes" in done.stderr and "only with --recursive" in done.stderr
    done = run_cli(s3, "cp", "-r", "s3://bucket/k/", str(tmp_path), "--processes", "0")
    assert done.returncode == 2
    assert "must be a whole number >= 1" in done.stderr


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_parent_stops_every_worker_and_leaves_no_temp_files(
    s3: FaultServer, tmp_path: Path, signum: int, code: int
) -> None:
    for i in range(20):
        s3.put_object("bucket", f"p/{i:02d}.bin", pattern(1000, seed=i))
    for i in (7, 13):  # these never finish
        s3.add_fault("bucket", f"p/{i:02d}.bin", Fault.stall(at_fraction=0.5), method="GET")
    command = [sys.executable, "-m", "s3pull", "cp", "-r", "s3://bucket/p/", str(tmp_path)]
    command += ["-q", "--processes", "2"]
    with subprocess.Popen(command, env=cli_env(s3), stderr=subprocess.PIPE, text=True) as child:
        deadline = time.monotonic() + 30
        while len([p for p in tmp_path.iterdir() if p.name.endswith(".bin")]) < 18:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        workers = workers_of(child.pid)
        assert len(workers) == 2
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=60)
    assert child.returncode == code, stderr
    assert ("interrupted" if code == 130 else "terminated") in stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{i:02d}.bin" for i in range(20) if i not in (7, 13)]
    for worker in workers:
        assert not Path(f"/proc/{worker}").exists(), "a worker outlived its parent"


# Endpoint breakers, shared -----------------------------------------------------------


async def test_a_worker_adopts_an_endpoint_another_found_down(
    s3: FaultServer, tmp_path: Path
) -> None:
    from s3pull._events import Events
    from s3pull.executors import PoolSetup, ShardOptions
    from s3pull.planning._shards import Shard, ShardItem

    for i in range(3):
        s3.put_object("bucket", f"d/{i}", b"fine")
    setup = PoolSetup(
        config=TransferConfig(),
        endpoint={"endpoint_url": s3.endpoint_url},
        events=Events([]),
        options=ShardOptions(),
    )
    worker = await _pool._spawn()
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(_pool.init_line(setup, 1))
    # What the parent passes on when another worker's probe of the bucket failed.
    down = ["s3://bucket", "down", 10, "503 ServiceUnavailable"]
    worker.stdin.write(json.dumps({"breaker": down}).encode() + b"\n")
    items = [
        ShardItem(i, str(tmp_path / str(i)), bucket="bucket", key=f"d/{i}", size=4)
        for i in range(3)
    ]
    worker.stdin.write(json.dumps({"shard": Shard(tuple(items)).to_json()}).encode() + b"\n")
    worker.stdin.close()
    outcomes = []
    while line := await worker.stdout.readline():
        outcomes += json.loads(line).get("o", [])
    assert await worker.wait() == 0
    assert sorted(number for number, _ in outcomes) == [0, 1, 2]
    for _, outcome in outcomes:
        assert outcome["error"]["type"] == "EndpointUnavailableError"
        assert "503 ServiceUnavailable" in outcome["error"]["message"]
    assert [r for r in s3.requests if r.method == "GET"] == []  # not one request
