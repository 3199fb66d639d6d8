"""Objects of unknown size start with one plain GET, not a HEAD."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import s3pull
from s3pull import AsyncClient, Client, TransferConfig
from s3pull._config import KiB, MiB
from s3pull.sinks import _tempfile
from s3pull.testing import Fault, FaultServer

from ..support import leftovers, pattern
from .test_many import files_under, run_cli

CONFIG = TransferConfig(part_size=1 * MiB, concurrency=2)


def _small_objects(s3: FaultServer, count: int) -> dict[str, bytes]:
    objects = {f"k/{i:02d}.bin": pattern(64 * KiB, seed=i) for i in range(count)}
    for key, data in objects.items():
        s3.put_object("bucket", key, data, checksum_algorithm="CRC32C")
    return objects


def test_a_key_list_of_small_objects_costs_one_get_each(s3: FaultServer, tmp_path: Path) -> None:
    objects = _small_objects(s3, 20)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        batch = client.download_many([f"s3://bucket/{key}" for key in objects], tmp_path)
    assert batch.ok and batch.downloaded == 20
    assert files_under(tmp_path) == objects
    assert [(r.method, r.range_header) for r in s3.requests] == [("GET", None)] * 20


def test_cli_from_file_costs_one_get_per_small_object(s3: FaultServer, tmp_path: Path) -> None:
    objects = _small_objects(s3, 20)
    out = tmp_path / "out"
    code, _out, err = run_cli(
        s3, "cp", "--from-file", "-", "s3://bucket", str(out), stdin="\n".join(objects)
    )
    assert code == 0, err
    assert files_under(out) == objects
    assert [(r.method, r.range_header) for r in s3.requests] == [("GET", None)] * 20


def test_cp_of_one_small_object_is_one_get(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "small.bin", b"small", checksum_algorithm="CRC32C")
    code, _out, err = run_cli(s3, "cp", "s3://bucket/small.bin", str(tmp_path / "small.bin"))
    assert code == 0, err
    assert (tmp_path / "small.bin").read_bytes() == b"small"
    assert [(r.method, r.range_header) for r in s3.requests] == [("GET", None)]


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_a_small_object_is_verified_from_its_one_get(
    s3: FaultServer, tmp_path: Path, algorithm: str
) -> None:
    data = pattern(300 * KiB, seed=7)
    s3.put_object("bucket", "one.bin", data, checksum_algorithm=algorithm)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://bucket/one.bin", tmp_path / "one.bin")
    assert (tmp_path / "one.bin").read_bytes() == data
    assert (result.verified, result.attempts) == (algorithm, 1)
    assert [r.method for r in s3.requests] == ["GET"]


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_a_larger_object_takes_its_identity_from_the_first_get(
    s3: FaultServer, tmp_path: Path, algorithm: str
) -> None:
    data = pattern(3 * MiB, seed=8)
    s3.put_object("bucket", "three.bin", data, checksum_algorithm=algorithm)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://bucket/three.bin", tmp_path / "three.bin")
    assert (tmp_path / "three.bin").read_bytes() == data
    assert result.verified == algorithm
    etag = f'"{s3.get_object("bucket", "three.bin").etag}"'
    [first, *parts] = s3.requests
    assert (first.method, first.range_header) == ("GET", None)
    # Its body is part 0; the other two come from ranged GETs pinned to its ETag.
    assert sorted((r.method, r.range_header, r.if_match) for r in parts) == [
        ("GET", f"bytes={i * MiB}-{(i + 1) * MiB - 1}", etag) for i in (1, 2)
    ]
    assert result.attempts == 3


def test_a_version_is_fetched_by_its_id(s3: FaultServer, tmp_path: Path) -> None:
    s3.create_bucket("versioned", versioned=True)
    old = s3.put_object("versioned", "k", b"one", checksum_algorithm="CRC32C")
    s3.put_object("versioned", "k", b"two", checksum_algorithm="CRC32C")
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://versioned/k", tmp_path / "k", version_id=old.version_id)
    assert (tmp_path / "k").read_bytes() == b"one"
    assert (result.version_id, result.verified, result.attempts) == (old.version_id, "CRC32C", 1)
    assert [(r.method, r.version_id) for r in s3.requests] == [("GET", old.version_id)]


def test_a_larger_version_pins_every_part_to_it(s3: FaultServer, tmp_path: Path) -> None:
    s3.create_bucket("versioned", versioned=True)
    data = pattern(2 * MiB + 1, seed=9)
    old = s3.put_object("versioned", "k", data)
    s3.put_object("versioned", "k", b"newer")
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://versioned/k", tmp_path / "k", version_id=old.version_id)
    assert (tmp_path / "k").read_bytes() == data
    assert result.version_id == old.version_id
    assert [r.method for r in s3.requests] == ["GET"] * 3
    assert {r.version_id for r in s3.requests} == {old.version_id}


def test_a_missing_key_is_one_request(s3: FaultServer, tmp_path: Path) -> None:
    s3.create_bucket("bucket")
    with (
        Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client,
        pytest.raises(s3pull.NotFoundError) as caught,
    ):
        client.download_file("s3://bucket/missing", tmp_path / "missing")
    assert caught.value.attempts == 1
    assert [(r.method, r.status) for r in s3.requests] == [("GET", 404)]
    assert leftovers(tmp_path) == []


def test_part_0_broken_in_the_first_get_resumes_with_a_ranged_get(
    s3: FaultServer, tmp_path: Path
) -> None:
    data = pattern(3 * MiB, seed=10)
    s3.put_object("bucket", "three.bin", data, checksum_algorithm="CRC32C")
    s3.add_fault("bucket", "three.bin", Fault.reset(at_fraction=0.1, times=1), ranged=False)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://bucket/three.bin", tmp_path / "three.bin")
    assert (tmp_path / "three.bin").read_bytes() == data
    assert (result.verified, result.attempts) == ("CRC32C", 1 + 2 + 1)
    [first] = [r for r in s3.requests if r.range_header is None]
    assert first.outcome == "reset"
    [retry] = [r for r in s3.requests if r.range_header and r.range_header.endswith(f"-{MiB - 1}")]
    # It asks for the rest of part 0 only: what the first GET brought is kept.
    resumed_at = int(retry.range_header.removeprefix("bytes=").split("-")[0])
    assert 0 < resumed_at <= first.body_bytes_sent


def _writers(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """The names of the threads that write each destination file."""
    writers: dict[str, set[str]] = {}
    real_pwrite = _tempfile.TempFile.pwrite

    def pwrite(self: _tempfile.TempFile, data: bytes | memoryview, offset: int) -> None:
        writers.setdefault(self.destination.name, set()).add(threading.current_thread().name)
        real_pwrite(self, data, offset)

    monkeypatch.setattr(_tempfile.TempFile, "pwrite", pwrite)
    return writers


def _on_threads(names: set[str]) -> bool:
    return all(name.startswith("s3pull-body") for name in names)


async def test_small_objects_of_unknown_size_after_the_first_are_read_on_the_loop(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The transport guesses an unknown size from the last one: the first
    # body goes to a worker thread, the later small ones on the loop,
    # as a listing's small objects do. Still one GET each.
    objects = _small_objects(s3, 4)
    first, *rest = objects
    writers = _writers(monkeypatch)
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        await client.download_file(f"s3://bucket/{first}", tmp_path / first)
        batch = await client.download_many([f"s3://bucket/{key}" for key in rest], tmp_path)
    assert batch.ok and files_under(tmp_path) == objects
    gets = [(r.method, r.range_header) for r in s3.requests if r.key in objects]
    assert gets == [("GET", None)] * 4
    assert [_on_threads(writers[key[2:]]) for key in objects] == [True, False, False, False]


@pytest.mark.parametrize("broken", [False, True], ids=["whole", "part-0-reset"])
async def test_a_larger_object_guessed_small_still_comes_whole(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    # After a small object the guess is wrong: the larger one's first GET is
    # read on the loop, cut at the end of part 0, resumed if it breaks.
    small = pattern(64 * KiB, seed=11)
    large = pattern(3 * MiB, seed=12)
    s3.put_object("bucket", "small.bin", small, checksum_algorithm="CRC32C")
    s3.put_object("bucket", "large.bin", large, checksum_algorithm="CRC32C")
    if broken:
        s3.add_fault("bucket", "large.bin", Fault.reset(at_fraction=0.1, times=1), ranged=False)
    writers = _writers(monkeypatch)
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        await client.download_file("s3://bucket/small.bin", tmp_path / "small.bin")
        result = await client.download_file("s3://bucket/large.bin", tmp_path / "large.bin")
    assert (tmp_path / "large.bin").read_bytes() == large
    assert result.verified == "CRC32C"
    gets = [r for r in s3.requests if r.key == "large.bin"]
    assert all(r.method == "GET" for r in gets) and len(gets) == (4 if broken else 3)
    [plain] = [r for r in gets if r.range_header is None]  # no HEAD, one plain GET
    assert plain.outcome == ("reset" if broken else "complete")
    # Part 0 on the loop (unless the reset came before its
    # first bytes did); parts 1 and 2 on worker threads.
    threads = {name.startswith("s3pull-body") for name in writers["large.bin"]}
    assert threads == {True, False} or (broken and threads == {True})


class _Retries(s3pull.Subscriber):
    def __init__(self) -> None:
        self.attempts: list[int] = []

    def on_retry(self, source: str, error: s3pull.S3PullError, attempt: int, delay: float) -> None:
        self.attempts.append(attempt)


def test_a_failed_first_get_counts_towards_the_heads_attempts(
    s3: FaultServer, tmp_path: Path
) -> None:
    # The first GET fails, then the HEAD that takes over from it: max_attempts
    # bounds the requests of both together, numbered once, as one request's.
    s3.put_object("bucket", "small.bin", b"small")
    s3.add_fault("bucket", "small.bin", Fault.status(500))
    config = TransferConfig(
        part_size=1 * MiB, retry=s3pull.RetryConfig(max_attempts=3, backoff_base=0.01)
    )
    retries = _Retries()
    with (
        Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[retries]) as client,
        pytest.raises(s3pull.ServerError) as caught,
    ):
        client.download_file("s3://bucket/small.bin", tmp_path / "small.bin")
    assert [r.method for r in s3.requests] == ["GET", "HEAD", "HEAD"]
    assert retries.attempts == [1, 2]
    assert caught.value.attempts == 3
    assert leftovers(tmp_path) == []


def test_a_listed_objects_failed_get_counts_towards_its_parts_attempts(
    s3: FaultServer, tmp_path: Path
) -> None:
    # The plain GET of a listed object fails, a HEAD answers, and part 0's
    # ranged GETs go on from that failure: three GETs in all for max_attempts=3.
    s3.put_object("bucket", "dir/small.bin", b"small")
    s3.add_fault("bucket", "dir/small.bin", Fault.status(500), method="GET")
    config = TransferConfig(
        part_size=1 * MiB, retry=s3pull.RetryConfig(max_attempts=3, backoff_base=0.01)
    )
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/dir/", tmp_path)
    [failed] = batch.failures
    assert failed.error is not None and failed.error.attempts == 3
    gets = [r for r in s3.requests if r.method == "GET" and r.key == "dir/small.bin"]
    assert len(gets) == 3
    assert leftovers(tmp_path) == []
