"""Many objects against the fault-injecting S3 server: prefixes, manifests,
partial failures, circuit breakers, hostile keys, the small-object fast path."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull import (
    AsyncClient,
    BatchResult,
    BreakerConfig,
    CircuitOpenError,
    Client,
    EndpointUnavailableError,
    NetworkError,
    NotFoundError,
    RetryConfig,
    Timeouts,
    TransferConfig,
    UnsafePathError,
    _sync,
)
from s3pull.scheduling._breaker import Breakers, BreakerState
from s3pull.sinks import _tempfile
from s3pull.testing import Fault, FaultServer, generate_bytes
from s3pull.testing._rss import run_cli_measured
from s3pull.transport import THREADED_BODY_ABOVE

from ..support import free_port, pattern

MiB = 1024 * 1024
NO_RETRY = RetryConfig(max_attempts=1)
FAST_RETRY = RetryConfig(max_attempts=3, backoff_base=0.001, backoff_cap=0.001)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def gets(s3: FaultServer, key: str) -> int:
    return sum(1 for r in s3.requests if r.method == "GET" and r.key == key)


# Prefixes -----------------------------------------------------------------------


def _sockets() -> set[str]:
    """This process's open sockets (the fault server runs in it too)."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            if (name := os.readlink(f"/proc/self/fd/{fd}")).startswith("socket:"):
                names.add(name)
    return names


@pytest.mark.parametrize("size", [100, 2 * THREADED_BODY_ABOVE])  # read on the loop / threads
def test_a_sync_client_dropped_unclosed_closes_its_connections(
    s3: FaultServer, tmp_path: Path, size: int
) -> None:
    s3.put_object("bucket", "k", pattern(size))
    _sync._loop_thread()  # the clients' one loop, whose self-pipe stays open
    before = _sockets()
    client = Client(endpoint_url=s3.endpoint_url, subscribers=[])
    client.download_file("s3://bucket/k", tmp_path / "k")
    assert _sockets() - before  # its kept-alive connection, both ends
    del client  # never closed, as a boto3 client often is not
    gc.collect()
    deadline = time.monotonic() + 5
    while _sockets() - before and time.monotonic() < deadline:
        time.sleep(0.02)  # the server's end closes once it sees ours close
    assert not _sockets() - before


def test_prefix_with_nested_keys_and_a_directory_marker(s3: FaultServer, tmp_path: Path) -> None:
    objects = {
        "data/a.bin": pattern(10, seed=1),
        "data/x/b.bin": pattern(100_000, seed=2),
        "data/x/y/z/c.bin": b"",
        "data/big.bin": pattern(3 * MiB + 5, seed=3),
        "other/not-me.bin": b"no",
        "data-sibling/not-me.bin": b"no",
    }
    for key, data in objects.items():
        s3.put_object("bucket", key, data)
    s3.put_object("bucket", "data/empty-dir/", b"")
    config = TransferConfig(part_size=1 * MiB)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/data/", tmp_path / "out")
    assert batch.ok, batch.failures
    assert (batch.downloaded, batch.directories, batch.failed) == (4, 1, 0)
    assert batch.bytes == sum(len(objects[k]) for k in objects if k.startswith("data/"))
    assert files_under(tmp_path / "out") == {
        key.removeprefix("data/"): data for key, data in objects.items() if key.startswith("data/")
    }
    assert (tmp_path / "out" / "empty-dir").is_dir()
    # modes come from the umask, never from the store
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out" / "x/b.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_prefix_without_trailing_slash_is_relative_to_its_directory(
    s3: FaultServer, tmp_path: Path
) -> None:
    for key in ("logs/2024-01.gz", "logs/2024-02.gz", "logs/2023-12.gz"):
        s3.put_object("bucket", key, key.encode())
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/logs/2024", tmp_path)
    assert batch.downloaded == 2
    assert sorted(files_under(tmp_path)) == ["2024-01.gz", "2024-02.gz"]


def test_empty_prefix_is_an_empty_success(s3: FaultServer, tmp_path: Path) -> None:
    s3.create_bucket("bucket")
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/nothing/", tmp_path / "out")
    assert batch.ok and batch.objects == 0
    assert not (tmp_path / "out").exists()


def test_ten_thousand_small_objects_over_many_listing_pages(
    s3: FaultServer, tmp_path: Path
) -> None:
    count = 10_000
    s3.put_many("bucket", (f"small/{i // 100:03d}/{i:05d}" for i in range(count)), size=64)
    started = time.monotonic()
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/small/", tmp_path)
    assert batch.ok, batch.failures[:3]
    assert batch.downloaded == count
    assert time.monotonic() - started < 90  # a bound on the test, not a benchmark
    listings = [r for r in s3.requests if r.key == "" and r.method == "GET"]
    assert len(listings) == 10  # 1000 keys a page
    assert not any(r.method == "HEAD" for r in s3.requests)  # the fast path: no HEAD
    sample = f"{4321 // 100:03d}/04321"
    assert (tmp_path / sample).read_bytes() == generate_bytes(f"small/{sample}", 64)


def test_include_and_exclude_last_match_wins(s3: FaultServer, tmp_path: Path) -> None:
    for key in ("p/a.csv", "p/b.json", "p/sub/c.csv", "p/sub/skip.csv"):
        s3.put_object("bucket", key, b"x")
    rules = [("exclude", "*"), ("include", "*.csv"), ("exclude", "sub/skip*")]
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path, filters=rules)
    assert batch.downloaded == 2
    assert sorted(files_under(tmp_path)) == ["a.csv", "sub/c.csv"]
    assert gets(s3, "p/b.json") == 0


def test_skip_existing_downloads_only_what_changed(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "p/same.bin", b"same", last_modified=1_700_000_000)
    s3.put_object("bucket", "p/changed.bin", b"old!", last_modified=1_700_000_000)
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        first = client.download_prefix("s3://bucket/p/", tmp_path)
        # the files carry the objects' modification times, as aws s3 cp sets them
        assert int((tmp_path / "same.bin").stat().st_mtime) == 1_700_000_000
        s3.put_object("bucket", "p/changed.bin", b"new!", last_modified=1_700_000_100)
        s3.reset_log()
        second = client.download_prefix("s3://bucket/p/", tmp_path, skip_existing=True)
    assert first.downloaded == 2
    assert (second.downloaded, second.existing) == (1, 1)
    assert gets(s3, "p/same.bin") == 0 and gets(s3, "p/changed.bin") == 1
    assert (tmp_path / "changed.bin").read_bytes() == b"new!"


# Partial failures ---------------------------------------------------------------------


def test_failures_are_contained_and_reported(s3: FaultServer, tmp_path: Path) -> None:
    for i in range(20):
        s3.put_object("bucket", f"docs/{i:02d}.pdf", pattern(1000 + i, seed=i))
    s3.add_fault("bucket", "docs/03.pdf", Fault.status(404, code="NoSuchKey"))
    s3.add_fault("bucket", "docs/07.pdf", Fault.status(503))  # always
    s3.add_fault("bucket", "docs/11.pdf", Fault.status(503, times=2))  # recovers
    config = TransferConfig(retry=RetryConfig(max_attempts=3, backoff_base=0.01, backoff_cap=0.02))
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/docs/", tmp_path)
    assert (batch.downloaded, batch.failed) == (18, 2)
    assert batch.errors == {"NotFoundError": 1, "ThrottledError": 1}
    failed = {outcome.source: outcome.error for outcome in batch.failures}
    assert isinstance(failed["s3://bucket/docs/03.pdf"], NotFoundError)
    assert failed["s3://bucket/docs/07.pdf"].attempts == 3
    assert sorted(files_under(tmp_path)) == [f"{i:02d}.pdf" for i in range(20) if i not in (3, 7)]
    assert (tmp_path / "11.pdf").read_bytes() == pattern(1011, seed=11)
    assert "2 failed (NotFoundError: 1, ThrottledError: 1)" in batch.summary()


def test_fail_fast_stops_and_leaves_no_temp_files(s3: FaultServer, tmp_path: Path) -> None:
    for i in range(200):
        s3.put_object("bucket", f"p/{i:03d}", b"x" * 100)
    s3.add_fault("bucket", "p/000", Fault.status(404))
    config = TransferConfig(batch_concurrency=2)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path, fail_fast=True)
    assert batch.stopped and not batch.ok
    assert batch.failed == 1
    assert batch.downloaded < 50
    assert all(".s3pull-" not in name for name in files_under(tmp_path))


def test_a_listing_page_that_fails_once_is_retried(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_many("bucket", (f"k{i:04d}" for i in range(2500)), size=8)
    s3.add_list_fault("bucket", Fault.status(500, times=1, skip=1))  # the second page
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/", tmp_path)
    assert batch.ok and batch.downloaded == 2500


def test_a_listing_that_repeats_its_token_ends_the_batch_with_an_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_many("bucket", (f"k{i:04d}" for i in range(1500)), size=8)
    s3.add_list_fault("bucket", Fault.repeat_token(times=1, skip=1))
    with (
        Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client,
        pytest.raises(Exception, match="continuation token") as caught,
    ):
        client.download_prefix("s3://bucket/", tmp_path)
    assert type(caught.value).__name__ == "ProtocolError"
    # what was listed before the loop was still downloaded, once each
    assert len(files_under(tmp_path)) >= 1000
    assert max(gets(s3, f"k{i:04d}") for i in range(1000)) == 1


# Safe paths --------------------------------------------------------------------------


def test_hostile_listing_writes_only_the_safe_key(s3: FaultServer, tmp_path: Path) -> None:
    destination = tmp_path / "dest"
    hostile = ["../../escape.txt", "/abs.txt", "a/../../b.txt", "ok/file.txt", "c\\d.txt"]
    for key in hostile:
        s3.put_object("bucket", key, b"payload")
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket", destination)
    assert batch.downloaded == 1
    assert files_under(tmp_path) == {"dest/ok/file.txt": b"payload"}
    refused = {outcome.source: outcome.error for outcome in batch.failures}
    assert set(refused) == {f"s3://bucket/{key}" for key in hostile if key != "ok/file.txt"}
    assert all(isinstance(error, UnsafePathError) for error in refused.values())
    assert all(gets(s3, key) == 0 for key in hostile if key != "ok/file.txt")


def test_symbolic_links_inside_the_destination_are_not_followed(
    s3: FaultServer, tmp_path: Path
) -> None:
    # Someone who can write to the destination planted links to elsewhere:
    # keys are safe, but their paths would lead through the links.
    outside = tmp_path / "outside"
    outside.mkdir()
    destination = tmp_path / "dest"
    (destination / "real").mkdir(parents=True)
    (destination / "link").symlink_to(outside)
    (destination / "real" / "deep").symlink_to(outside)
    objects = {
        "link/": b"",  # a directory marker
        "link/big.bin": pattern(3 * MiB),  # HEAD and ranged GETs
        "link/small.txt": b"s",  # one GET
        "real/deep/x.txt": b"x",
        "real/ok.txt": b"ok",
        "top.txt": b"t",
    }
    for key, data in objects.items():
        s3.put_object("bucket", key, data)
    root_link = tmp_path / "root-link"  # the destination itself is the user's to choose
    root_link.symlink_to(destination)
    config = TransferConfig(part_size=1 * MiB)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket", root_link)
    assert sorted(os.listdir(outside)) == []
    assert files_under(destination) == {"real/ok.txt": b"ok", "top.txt": b"t"}
    refused = {o.source.removeprefix("s3://bucket/"): o.error for o in batch.failures}
    assert sorted(refused) == ["link/", "link/big.bin", "link/small.txt", "real/deep/x.txt"]
    for key, error in refused.items():
        assert isinstance(error, UnsafePathError)
        link = "real/deep" if key.startswith("real") else "link"
        assert str(error).endswith(
            f"{root_link / link} is a symbolic link inside the destination: not followed"
        )


def test_file_directory_and_case_conflicts_are_refused(s3: FaultServer, tmp_path: Path) -> None:
    for key in ("a", "a/b", "Report.txt", "report.txt"):
        s3.put_object("bucket", f"p/{key}", key.encode())
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path)
    # listings are sorted: "Report.txt" < "a" < "a/b" < "report.txt"
    assert batch.downloaded == 2
    assert files_under(tmp_path) == {"Report.txt": b"Report.txt", "a": b"a"}
    assert sorted(o.source for o in batch.failures) == [
        "s3://bucket/p/a/b",
        "s3://bucket/p/report.txt",
    ]


def test_many_pairs_and_keys_into_a_directory(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "x/one.bin", b"1")
    s3.put_object("bucket", "x/two.bin", b"22")

    def items() -> Iterator[object]:
        yield "s3://bucket/x/one.bin"  # lands at its key under the destination
        yield ("s3://bucket/x/two.bin", tmp_path / "renamed.bin")
        yield "s3://bucket/../up.bin"  # refused before any request

    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_many(items(), tmp_path / "keys")  # type: ignore[arg-type]
    assert (batch.downloaded, batch.failed) == (2, 1)
    assert (tmp_path / "keys/x/one.bin").read_bytes() == b"1"
    assert (tmp_path / "renamed.bin").read_bytes() == b"22"
    assert isinstance(batch.failures[0].error, UnsafePathError)


async def test_outcomes_stream_as_they_finish(s3: FaultServer, tmp_path: Path) -> None:
    for i in range(30):
        s3.put_object("bucket", f"p/{i}", b"x")
    async with AsyncClient(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        seen = [o.status async for o in client.iter_download_prefix("s3://bucket/p/", tmp_path)]
    assert seen == ["downloaded"] * 30


# The fast path for small listed objects ------------------------------------------------


def test_small_listed_objects_take_one_get_and_no_head(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "p/crc.bin", pattern(5000), checksum_algorithm="CRC64NVME")
    s3.put_object("bucket", "p/md5.bin", pattern(6000))
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        outcomes = list(client.iter_download_prefix("s3://bucket/p/", tmp_path))
    verified = {Path(o.source).name: o.result.verified for o in outcomes if o.result is not None}
    assert verified == {"crc.bin": "CRC64NVME", "md5.bin": "MD5"}
    assert [r.method for r in s3.requests if r.key.startswith("p/")] == ["GET", "GET"]


async def test_listed_objects_over_1_mib_are_read_on_a_worker_thread(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the loop a body passes through the event loop, chunk by chunk:
    # cheap for small objects, a ceiling for a batch of larger ones.
    big, small = pattern(THREADED_BODY_ABOVE + 1, seed=3), pattern(THREADED_BODY_ABOVE, seed=4)
    s3.put_object("bucket", "p/big.bin", big, checksum_algorithm="CRC64NVME")
    s3.put_object("bucket", "p/small.bin", small, checksum_algorithm="CRC64NVME")
    writers: dict[str, set[int]] = {}
    real_pwrite = _tempfile.TempFile.pwrite

    def pwrite(self: _tempfile.TempFile, data: bytes | memoryview, offset: int) -> None:
        writers.setdefault(self.destination.name, set()).add(threading.get_ident())
        real_pwrite(self, data, offset)

    monkeypatch.setattr(_tempfile.TempFile, "pwrite", pwrite)
    async with AsyncClient(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        outcomes = [o async for o in client.iter_download_prefix("s3://bucket/p/", tmp_path)]
    assert [o.result.verified for o in outcomes if o.result] == ["CRC64NVME"] * 2
    assert files_under(tmp_path) == {"big.bin": big, "small.bin": small}
    assert [r.method for r in s3.requests if r.key.startswith("p/")] == ["GET", "GET"]
    assert writers["small.bin"] == {threading.get_ident()}
    assert threading.get_ident() not in writers["big.bin"]


def test_a_batch_loads_no_third_party_http_client(s3: FaultServer, tmp_path: Path) -> None:
    # Both HTTP clients are the standard library's (http.client on worker
    # threads, asyncio's transports on the loop): importing aiohttp was
    # ~0.1 s of start-up. A batch with a body for each of them loads neither
    # aiohttp nor yarl.
    import subprocess

    for i, size in enumerate((2 * MiB, 1000)):
        s3.put_object("bucket", f"p/{i}.bin", pattern(size, seed=i))
    script = (
        "import sys\n"
        "from s3pull import Client\n"
        f"with Client(endpoint_url={s3.endpoint_url!r}, subscribers=[]) as client:\n"
        f"    batch = client.download_prefix('s3://bucket/p/', {str(tmp_path)!r})\n"
        "assert batch.ok and batch.downloaded == 2, batch.failures\n"
        "print(sorted(m for m in ('aiohttp', 'yarl') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert files_under(tmp_path) == {
        "0.bin": pattern(2 * MiB, seed=0),
        "1.bin": pattern(1000, seed=1),
    }


async def test_no_fsync_runs_on_the_event_loop(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a disk each fsync waits milliseconds: on the loop it would hold up
    # every other download of the batch. Small (one GET) and multi-part alike.
    small, large = pattern(5000, seed=1), pattern(3 * MiB, seed=2)
    s3.put_object("bucket", "p/small.bin", small)
    s3.put_object("bucket", "p/large.bin", large)
    synced_on: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced_on.append(threading.get_ident())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: False)  # wherever tmp_path is
    config = TransferConfig(part_size=MiB)
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = await client.download_prefix("s3://bucket/p/", tmp_path)
    assert batch.ok, batch.failures
    assert files_under(tmp_path) == {"large.bin": large, "small.bin": small}
    assert synced_on and threading.get_ident() not in synced_on


def test_kms_object_etag_is_not_taken_for_an_md5(s3: FaultServer, tmp_path: Path) -> None:
    # A listing shows only the ETag; an SSE-KMS object's ETag is not its MD5.
    # The fast path must learn the encryption from the GET before checking.
    s3.put_object("bucket", "p/kms.bin", b"secret", encryption="aws:kms", etag="0" * 32)
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path)
    assert batch.ok, batch.failures
    assert (tmp_path / "kms.bin").read_bytes() == b"secret"
    # one GET: a mismatch on the fast path would have fallen back to HEAD + GET
    assert [r.method for r in s3.requests if r.key == "p/kms.bin"] == ["GET"]


@pytest.mark.parametrize("size", [200_000, THREADED_BODY_ABOVE + 100_000])  # loop, thread
def test_fast_path_failure_continues_down_the_normal_path(
    s3: FaultServer, tmp_path: Path, size: int
) -> None:
    data = pattern(size, seed=9)
    s3.put_object("bucket", "p/flaky.bin", data)
    s3.add_fault("bucket", "p/flaky.bin", Fault.reset(at_fraction=0.5, times=1), method="GET")
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path)
    assert batch.ok, batch.failures
    assert (tmp_path / "flaky.bin").read_bytes() == data
    methods = [r.method for r in s3.requests if r.key == "p/flaky.bin"]
    assert methods[:2] == ["GET", "HEAD"]  # the broken fast GET, then the normal path


ONE_GET_FAULTS = [
    pytest.param(Fault.reset(at_fraction=0.5, times=1), 2, id="reset"),
    pytest.param(Fault.truncate(at_fraction=0.7, times=1), 2, id="truncate"),
    pytest.param(Fault.stall(at_fraction=0.3, times=1), 2, id="stall"),
    pytest.param(Fault.flip_byte(times=1), 2, id="flipped-byte"),
    pytest.param(Fault.status(503, times=1), 2, id="503"),
    # Bytes past Content-Length are never read as the body's.
    pytest.param(Fault.extra_bytes(times=1), 1, id="extra-bytes"),
]


@pytest.mark.parametrize(("fault", "least_gets"), ONE_GET_FAULTS)
def test_a_threaded_one_get_survives_body_faults(
    s3: FaultServer, tmp_path: Path, fault: Fault, least_gets: int
) -> None:
    # A listed object over THREADED_BODY_ABOVE: its one GET is read on a
    # worker thread. The fault hits that GET; the object must still land
    # whole and verified, through the ranged path if need be.
    data = pattern(THREADED_BODY_ABOVE + 300_000, seed=11)
    s3.put_object("bucket", "p/obj.bin", data, checksum_algorithm="CRC64NVME")
    s3.add_fault("bucket", "p/obj.bin", fault, method="GET")
    timeouts = Timeouts(10, first_byte=1.0, read=0.3, stall_window=0.2)
    config = TransferConfig(retry=FAST_RETRY, timeouts=timeouts)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path)
    assert batch.ok, batch.failures
    assert files_under(tmp_path) == {"obj.bin": data}
    gets = [r for r in s3.requests if r.method == "GET" and r.key == "p/obj.bin"]
    assert len(gets) >= least_gets and gets[0].range_header is None  # the one GET first


def test_a_threaded_one_get_that_keeps_failing_leaves_nothing(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object("bucket", "p/obj.bin", pattern(THREADED_BODY_ABOVE + 1, seed=12))
    s3.add_fault("bucket", "p/obj.bin", Fault.reset(at_fraction=0.5), method="GET")
    config = TransferConfig(retry=FAST_RETRY)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        batch = client.download_prefix("s3://bucket/p/", tmp_path)
    assert (batch.downloaded, batch.failed) == (0, 1)
    assert isinstance(batch.failures[0].error, NetworkError)
    assert sorted(os.listdir(tmp_path)) == []


def test_large_objects_do_not_hold_up_small_ones(s3: FaultServer, tmp_path: Path) -> None:
    # Three slow large objects are listed first. With one shared pool of two
    # workers they would take both workers and every small object would
    # finish after them; the large lane takes them one at a time instead.
    for i in range(3):
        s3.put_object("bucket", f"p/a-huge{i}.bin", pattern(2 * MiB, seed=i))
        # slow bodies: ~0.5 s each at 4 MiB/s
        s3.add_fault(
            "bucket", f"p/a-huge{i}.bin", Fault.drip(chunk=256 * 1024, interval=0.06), method="GET"
        )
    for i in range(40):
        s3.put_object("bucket", f"p/small{i:02d}", b"s" * 10)
    config = TransferConfig(
        large_object_threshold=1 * MiB, large_objects=1, batch_concurrency=2, part_size=4 * MiB
    )
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        outcomes = client.iter_download_prefix("s3://bucket/p/", tmp_path)
        order = [Path(outcome.source).name for outcome in outcomes]
    assert sorted(order[:40]) == [f"small{i:02d}" for i in range(40)]
    assert order[40:] == ["a-huge0.bin", "a-huge1.bin", "a-huge2.bin"]  # one at a time, in order


# Circuit breakers ---------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_object_breaker_opens_then_probes_then_resets(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "p/good", b"ok")
    s3.put_object("bucket", "p/broken", b"never")
    s3.add_fault("bucket", "p/broken", Fault.status(500))
    fake = FakeTime()
    breakers = BreakerConfig(failures=3, cooldown=300)
    config = TransferConfig(retry=NO_RETRY, breakers=breakers)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        client._client().breakers = Breakers(breakers, clock=fake.clock, sleep=fake.sleep)
        key = "s3://bucket/p/broken"
        for _ in range(3):
            batch = client.download_prefix("s3://bucket/p/", tmp_path)
            assert batch.errors == {"ServerError": 1}
        state = client._client().breakers.state(key)
        assert (state.state, state.failures) == ("open", 3)
        assert "500" in (state.last_failure or "")
        requests = gets(s3, "p/broken")
        skipped = client.download_prefix("s3://bucket/p/", tmp_path)
        assert skipped.errors == {"CircuitOpenError": 1} and skipped.downloaded == 1
        assert isinstance(skipped.failures[0].error, CircuitOpenError)
        assert gets(s3, "p/broken") == requests  # not hammered
        fake.now += 301  # the cooldown passes: one half-open probe
        s3.clear_faults()
        probe = client.download_prefix("s3://bucket/p/", tmp_path)
        assert probe.ok
        assert client._client().breakers.state(key).state == "closed"
        s3.add_fault("bucket", "p/broken", Fault.status(500))
        for _ in range(3):
            client.download_prefix("s3://bucket/p/", tmp_path)
        client._client().breakers.reset(key)
        assert client._client().breakers.state(key).failures == 0


def endpoint_batch(
    s3: FaultServer, tmp_path: Path, fault: Fault
) -> tuple[BatchResult, BreakerState, FakeTime]:
    """12 objects one at a time, their GETs hit by ``fault``; the endpoint
    opens after 4 failures and pauses 60 s (fake) before its probe."""
    for i in range(12):
        s3.put_object("bucket", f"p/{i:02d}", b"x")
    s3.add_fault("bucket", None, fault, method="GET")
    fake = FakeTime()
    breakers = BreakerConfig(endpoint_failures=4, endpoint_cooldown=60)
    config = TransferConfig(retry=NO_RETRY, breakers=breakers, batch_concurrency=1)
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        client._client().breakers = Breakers(breakers, clock=fake.clock, sleep=fake.sleep)
        batch = client.download_prefix("s3://bucket/p/", tmp_path)
        return batch, client._client().breakers.endpoint_state("s3://bucket"), fake


def test_endpoint_breaker_pauses_once_then_fails_the_rest_at_once(
    s3: FaultServer, tmp_path: Path
) -> None:
    batch, state, fake = endpoint_batch(s3, tmp_path, Fault.status(503))
    # 4 failures open it; the 5th object waits out one cooldown as the probe
    # and fails too; the 7 after it fail at once, without a request.
    assert batch.failed == 12
    assert batch.errors == {"ThrottledError": 5, "EndpointUnavailableError": 7}
    assert fake.slept == [60.0]
    assert sum(1 for r in s3.requests if r.method == "GET" and r.key) == 5  # listing aside
    skipped = batch.failures[-1].error
    assert isinstance(skipped, EndpointUnavailableError)
    assert str(skipped).startswith(
        "s3://bucket/p/11: not attempted: endpoint s3://bucket is down: 5 transient failures"
    )
    assert "503 SlowDown" in str(skipped)
    assert state.state == "open" and files_under(tmp_path) == {}


def test_endpoint_that_blips_costs_one_pause_and_no_more_failures(
    s3: FaultServer, tmp_path: Path
) -> None:
    batch, state, fake = endpoint_batch(s3, tmp_path, Fault.status(503, times=4))
    assert (batch.downloaded, batch.errors) == (8, {"ThrottledError": 4})
    assert fake.slept == [60.0]  # the probe's pause; its success released the rest
    assert state.state == "closed"


# CLI ----------------------------------------------------------------------------------


def cli_env(s3: FaultServer) -> dict[str, str]:
    return dict(os.environ, AWS_ENDPOINT_URL=s3.endpoint_url)


def run_cli(s3: FaultServer, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "s3pull", *args],
        env=cli_env(s3),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_cli_recursive_reports_failures_and_exits_1(s3: FaultServer, tmp_path: Path) -> None:
    for i in range(5):
        s3.put_object("bucket", f"p/{i}.txt", f"{i}".encode())
    s3.put_object("bucket", "p/../evil.txt", b"evil")
    s3.add_fault("bucket", "p/2.txt", Fault.status(404, code="NoSuchKey"))
    code, _out, err = run_cli(s3, "cp", "--recursive", "s3://bucket/p/", f"{tmp_path}/")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith(
        "s3pull: 4 downloaded, 2 failed (NotFoundError: 1, UnsafePathError: 1)"
    )
    assert any("p/2.txt" in line and "not found" in line for line in lines)
    assert sorted(files_under(tmp_path)) == ["0.txt", "1.txt", "3.txt", "4.txt"]
    assert not (tmp_path.parent / "evil.txt").exists()


def test_cli_from_stdin_with_json_lines(s3: FaultServer, tmp_path: Path) -> None:
    import json

    s3.put_object("bucket", "a/one", b"1")
    s3.put_object("bucket", "b/two", b"22")
    code, out, err = run_cli(
        s3,
        "cp",
        "--from-file",
        "-",
        "s3://bucket",
        str(tmp_path),
        "--json",
        stdin="a/one\ns3://bucket/b/two\na/missing\n\n",
    )
    assert code == 1, err
    records = {r["source"]: r for r in map(json.loads, out.splitlines())}
    assert records["s3://bucket/a/one"]["status"] == "downloaded"
    assert records["s3://bucket/b/two"]["bytes"] == 2
    assert records["s3://bucket/a/missing"]["error"]["type"] == "NotFoundError"
    assert records["s3://bucket/a/missing"]["status"] == "failed"
    assert files_under(tmp_path) == {"a/one": b"1", "b/two": b"22"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--skip-existing", "s3://bucket/k", "out"], "only with --recursive or --from-file"),
        (["--dry-run", "s3://bucket/k", "out"], "--dry-run: only with --recursive or --from-file"),
        (["-r", "--from-file", "f", "s3://bucket/", "out"], "not both"),
        (["-r", "--version-id", "v1", "s3://bucket/", "out"], "one object"),
        (["-r", "https://example.com/x", "out"], "expected s3://bucket/prefix"),
        (["s3://bucket", "out"], "names a bucket, not an object"),
    ],
)
def test_cli_batch_usage_errors(
    s3: FaultServer, tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = run_cli(s3, "cp", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


# Dry runs -----------------------------------------------------------------------------


def test_a_dry_run_plans_from_the_listing_and_writes_nothing(
    s3: FaultServer, tmp_path: Path
) -> None:
    keys = {"p/a.bin": 1000, "p/sub/b.bin": 3 * MiB, "p/old.bin": 10, "p/dir/": 0, "p/../x": 5}
    for key, size in keys.items():
        s3.put_object("bucket", key, pattern(size), last_modified=1_700_000_000)
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "old.bin").write_bytes(pattern(10))  # up to date: kept
    os.utime(destination / "old.bin", (1_800_000_000, 1_800_000_000))
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        outcomes = list(
            client.iter_download_prefix(
                "s3://bucket/p/", destination, skip_existing=True, dry_run=True
            )
        )
        batch = client.download_prefix("s3://bucket/p/", destination, dry_run=True)
    seen = {o.source.removeprefix("s3://bucket/p/"): (o.status, o.size) for o in outcomes}
    assert seen == {
        "a.bin": ("planned", 1000),
        "sub/b.bin": ("planned", 3 * MiB),
        "dir/": ("planned", 0),
        "old.bin": ("existing", 10),
        "../x": ("failed", None),
    }
    assert (batch.planned, batch.planned_bytes, batch.failed) == (4, 1000 + 3 * MiB + 10, 1)
    assert not batch.ok  # what would fail for real fails here too
    assert files_under(destination) == {"old.bin": pattern(10)}  # nothing written
    assert [r.method for r in s3.requests] == ["GET", "GET"]  # the two listings only


def test_a_dry_run_of_named_objects_heads_each_one(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "k/a.bin", pattern(1234))
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        batch = client.download_many(
            ["s3://bucket/k/a.bin", "s3://bucket/k/missing.bin"], tmp_path / "out", dry_run=True
        )
    assert (batch.planned, batch.planned_bytes) == (1, 1234)
    assert [type(o.error) for o in batch.failures] == [NotFoundError]
    assert not (tmp_path / "out").exists()
    assert sorted(r.method for r in s3.requests) == ["HEAD", "HEAD"]


def test_cli_dry_run_prints_the_plan(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "p/a.bin", pattern(2048))
    s3.put_object("bucket", "p/dir/", b"")
    code, out, err = run_cli(s3, "cp", "-r", "s3://bucket/p/", f"{tmp_path}/out", "--dry-run")
    assert code == 0, err
    assert sorted(out.splitlines()) == [  # in the order they finish
        f"(dry run) s3://bucket/p/a.bin -> {tmp_path}/out/a.bin (2.0 KiB)",
        f"(dry run) s3://bucket/p/dir/ -> {tmp_path}/out/dir (directory)",
    ]
    assert err.startswith("s3pull: dry run: 2 to download (2.0 KiB); planned in ")
    assert not (tmp_path / "out").exists()


# Memory -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_100k_key_listing_keeps_memory_flat(tmp_path: Path) -> None:
    peaks = {}
    with FaultServer() as s3:
        s3.put_many("small", (f"k/{i:07d}" for i in range(1_000)), size=1)
        s3.put_many("large", (f"k/{i:07d}" for i in range(100_000)), size=1)
        for bucket in ("small", "large"):
            # every key is listed, routed and filtered out: only the listing is measured
            done, _, peak = run_cli_measured(
                ["cp", "-r", f"s3://{bucket}/k/", str(tmp_path / bucket), "--exclude", "*"],
                env=cli_env(s3),
                capture=True,
            )
            assert done.returncode == 0, done.stderr
            assert peak > 0, "the child did not report its peak RSS"
            peaks[bucket] = peak
    assert peaks["large"] - peaks["small"] < 8 * MiB, peaks


def test_sigterm_mid_batch_keeps_finished_files_and_leaves_no_temp_files(
    s3: FaultServer, tmp_path: Path
) -> None:
    import signal
    import subprocess

    for i in range(20):
        s3.put_object("bucket", f"p/{i:02d}.bin", pattern(1000, seed=i))
    for i in (7, 13):  # these never finish
        s3.add_fault("bucket", f"p/{i:02d}.bin", Fault.stall(at_fraction=0.5), method="GET")
    command = [sys.executable, "-m", "s3pull", "cp", "-r", "s3://bucket/p/", str(tmp_path), "-q"]
    with subprocess.Popen(command, env=cli_env(s3), stderr=subprocess.PIPE, text=True) as child:
        deadline = time.monotonic() + 30
        while len([p for p in tmp_path.iterdir() if p.name.endswith(".bin")]) < 18:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 143
    assert "terminated" in stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{i:02d}.bin" for i in range(20) if i not in (7, 13)]
    assert (tmp_path / "12.bin").read_bytes() == pattern(1000, seed=12)


def test_cli_batch_against_a_dead_endpoint_ends_with_every_object_failed(tmp_path: Path) -> None:
    import subprocess

    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"k/{i:03d}\n" for i in range(200)))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connect is refused
    args = ["cp", "--from-file", str(keys), "s3://bucket/", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "s3pull", *args, "--endpoint-url", dead],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    failed = [line for line in lines if line.startswith("s3pull: failed: s3://bucket/k/")]
    assert len(failed) == 200
    unavailable = [line for line in failed if "is down" in line]
    assert unavailable and all("Connection refused" in line for line in unavailable)
    summary = lines[-1]
    assert summary.startswith("s3pull: 0 downloaded, 200 failed (EndpointUnavailableError: ")
    assert "NetworkError: " in summary
    # The pause before the probe (10 s) outlasts the 5 s between progress
    # lines, so there is one, and it tells the time so far.
    progress = [line for line in lines if line.startswith("s3pull: so far ")]
    assert progress and not any(" in 0.00 s " in line for line in progress)
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == {}
