"""Ordered streams (``AsyncClient.open`` / ``Client.open``) against the
fault-injecting server: identical bytes, invisible resumes, a bounded window,
cancellation, and checksum failures at the end."""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import s3pull
from s3pull import AsyncClient, Client, RetryConfig, TransferConfig
from s3pull.testing import Fault, FaultServer, generate_bytes

from ..support import pattern

MiB = 1024 * 1024
CONFIG = TransferConfig(concurrency=4, retry=RetryConfig(backoff_base=0.001, backoff_cap=0.01))
WINDOW = 4 * MiB
PART = 1 * MiB


def _client(s3: FaultServer, config: TransferConfig = CONFIG) -> AsyncClient:
    return AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[])


async def _read_all(s3: FaultServer, key: str, **options: object) -> bytes:
    async with _client(s3) as client, client.open(f"s3://bucket/{key}", **options) as stream:  # type: ignore[arg-type]
        return b"".join([chunk async for chunk in stream])


@pytest.mark.parametrize(
    "size", [0, 1, PART - 1, PART, PART + 1, WINDOW, WINDOW + 1, 9 * MiB + 123]
)
async def test_the_stream_is_the_object(s3: FaultServer, size: int) -> None:
    data = pattern(size, seed=size)
    s3.put_object("bucket", "obj", data)
    assert await _read_all(s3, "obj", window=WINDOW, part_size=PART) == data


async def test_a_large_object_through_the_default_window(s3: FaultServer) -> None:
    s3.put_generated("bucket", "big", 96 * MiB, checksum_algorithm="CRC64NVME")
    expected = hashlib.sha256(generate_bytes("big", 96 * MiB, 0)).hexdigest()
    digest = hashlib.sha256()
    async with _client(s3, TransferConfig()) as client, client.open("s3://bucket/big") as stream:
        assert stream.window == 32 * MiB and stream.part_size == 4 * MiB
        async for chunk in stream:
            digest.update(chunk)
        assert client.budget.peak <= stream.window + 16 * client.config.stream_cost
    assert digest.hexdigest() == expected


@settings(max_examples=15)
@given(reads=st.lists(st.integers(min_value=1, max_value=3 * MiB), min_size=1, max_size=20))
async def test_reads_of_any_size_give_the_bytes_in_order(reads: list[int]) -> None:
    data = pattern(5 * MiB + 7, seed=9)
    with FaultServer() as s3:
        s3.put_object("bucket", "obj", data)
        async with (
            _client(s3) as client,
            client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream,
        ):
            got = bytearray()
            for size in reads:
                chunk = await stream.read(size)
                assert len(chunk) <= size
                got += chunk
            got += await stream.read()
    assert got == data


@pytest.mark.parametrize(
    "fault",
    [
        Fault.reset(at_fraction=0.5, times=3),
        Fault.truncate(at_fraction=0.3, times=2),
        Fault.status(503, times=3),
        Fault.stall(at_fraction=0.5, times=1),
    ],
    ids=["reset", "truncate", "503", "stall"],
)
async def test_faults_mid_part_are_invisible_to_the_reader(s3: FaultServer, fault: Fault) -> None:
    data = pattern(6 * MiB + 11, seed=2)
    s3.put_object("bucket", "obj", data, checksum_algorithm="CRC32C")
    s3.add_fault("bucket", "obj", fault, method="GET")
    config = TransferConfig(
        concurrency=4,
        retry=RetryConfig(backoff_base=0.001, backoff_cap=0.01),
        timeouts=s3pull.Timeouts(2, stall_window=0.5, stall_min_rate=64 * 1024),
    )
    async with (
        _client(s3, config) as client,
        client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream,
    ):
        got = b"".join([chunk async for chunk in stream])
    assert got == data
    resumed = [r for r in s3.requests if r.method == "GET" and r.range_header]
    assert len(resumed) > 7  # the faults really happened, and were retried


async def test_a_server_that_ignores_range_is_read_in_one_get(s3: FaultServer) -> None:
    data = pattern(7 * MiB, seed=5)
    s3.put_object("bucket", "obj", data)
    s3.add_fault("bucket", "obj", Fault.ignore_range(), method="GET")
    async with _client(s3) as client:
        async with client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream:
            got = b"".join([chunk async for chunk in stream])
        assert client.budget.peak <= WINDOW + 4 * client.config.stream_cost
    assert got == data


async def test_a_slow_reader_keeps_the_window_bounded(s3: FaultServer) -> None:
    s3.put_object("bucket", "obj", pattern(32 * MiB))
    async with (
        _client(s3) as client,
        client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream,
    ):
        first = await stream.read(1000)
        await asyncio.sleep(0.5)  # the reader dawdles; the fetchers must not run ahead
        sent = s3.bytes_sent("bucket", "obj")
        assert len(first) == 1000
        # the window plus what sits in socket buffers, not the whole object
        assert sent <= WINDOW + 4 * MiB
        assert client.budget.used <= WINDOW + 4 * client.config.stream_cost


async def test_closing_mid_stream_cancels_fetching_and_frees_the_budget(
    s3: FaultServer,
) -> None:
    s3.put_object("bucket", "obj", pattern(64 * MiB))
    async with _client(s3) as client:
        async with client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream:
            await stream.read(10)
        assert client.budget.used == 0
        requests = len(s3.requests)
        await asyncio.sleep(0.3)
        assert len(s3.requests) <= requests + 4  # nothing new is started after close
        with pytest.raises(ValueError, match="closed"):
            await stream.read(10)
    assert s3.bytes_sent("bucket", "obj") < 16 * MiB


async def test_cancelling_the_reader_task_cleans_up(s3: FaultServer) -> None:
    s3.put_object("bucket", "obj", pattern(8 * MiB))
    s3.add_fault("bucket", "obj", Fault.hang(), method="GET", min_range_start=2 * MiB)
    async with _client(s3) as client:

        async def reader() -> None:
            async with client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream:
                async for _ in stream:
                    pass

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.budget.used == 0


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", None])
async def test_a_corrupt_body_fails_the_read_that_reaches_the_end(
    s3: FaultServer, algorithm: str | None
) -> None:
    data = pattern(3 * MiB, seed=8)
    s3.put_object("bucket", "obj", data, checksum_algorithm=algorithm)  # None: the MD5 ETag
    s3.add_fault("bucket", "obj", Fault.flip_byte(), method="GET", range_start=PART)
    async with (
        _client(s3) as client,
        client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream,
    ):
        got = bytearray()
        with pytest.raises(s3pull.IntegrityError, match="mismatch"):
            while chunk := await stream.read(64 * 1024):
                got += chunk
    assert len(got) == len(data) and got != data  # delivered, then refused at the end


async def test_a_missing_object_fails_at_open(s3: FaultServer) -> None:
    s3.create_bucket("bucket")
    async with _client(s3) as client:
        with pytest.raises(s3pull.NotFoundError):
            async with client.open("s3://bucket/nope"):
                pass
        assert client.budget.used == 0


async def test_an_object_deleted_mid_stream_is_an_error_after_the_good_bytes(
    s3: FaultServer,
) -> None:
    data = pattern(6 * MiB, seed=3)
    s3.put_object("bucket", "obj", data)
    s3.add_fault("bucket", "obj", Fault.delete(), method="GET", range_start=5 * MiB)
    async with (
        _client(s3, TransferConfig(concurrency=1)) as client,
        client.open("s3://bucket/obj", window=WINDOW, part_size=PART) as stream,
    ):
        got = bytearray()
        with pytest.raises(s3pull.NotFoundError):
            async for chunk in stream:
                got += chunk
    assert bytes(got) == data[: len(got)] and len(got) >= 4 * MiB


@pytest.mark.parametrize(
    ("window", "part_size", "message"),
    [
        (512 * 1024, PART, "must hold at least one part"),
        (64 * MiB, PART, "leaves no room"),
        ("lots", None, "not a size"),
    ],
)
async def test_bad_windows_are_refused(
    s3: FaultServer, window: object, part_size: int | None, message: str
) -> None:
    s3.put_object("bucket", "obj", b"x")
    async with _client(s3) as client:
        with pytest.raises(s3pull.ConfigError, match=message):
            async with client.open("s3://bucket/obj", window=window, part_size=part_size):  # type: ignore[arg-type]
                pass
    assert [r.method for r in s3.requests] == []


def test_the_sync_reader_feeds_gzip_and_csv(s3: FaultServer) -> None:
    rows = [[str(i), f"key-{i}", str(i * 7)] for i in range(200_000)]
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    s3.put_object("bucket", "rows.csv.gz", gzip.compress(text.getvalue().encode(), 1))
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        with (
            client.open("s3://bucket/rows.csv.gz", window=WINDOW, part_size=PART) as raw,
            gzip.open(raw, "rt", newline="") as lines,
        ):
            assert raw.info.size == s3.get_object("bucket", "rows.csv.gz").size
            assert list(csv.reader(lines)) == rows
        assert raw.closed


def test_the_sync_reader_is_a_read_only_binary_file(s3: FaultServer) -> None:
    data = pattern(3 * MiB + 1, seed=4)
    s3.put_object("bucket", "obj", data)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        reader = client.open("s3://bucket/obj", window=WINDOW, part_size=PART)
        with reader:
            assert reader.readable() and not reader.seekable() and not reader.writable()
            head = reader.read(10)
            buffer = bytearray(100_000)
            n = reader.readinto(buffer)
            rest = reader.read()
        assert head + bytes(buffer[:n]) + rest == data
        with pytest.raises(ValueError):
            reader.read(1)


def _cat(
    s3: FaultServer, key: str, *args: str, **options: Any
) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "s3pull", "cat", f"s3://bucket/{key}"]
    options.setdefault("capture_output", True)
    return subprocess.run(
        [*command, "--endpoint-url", s3.endpoint_url, *args], timeout=60, **options
    )


def test_cat_writes_the_object_to_stdout(s3: FaultServer) -> None:
    data = pattern(5 * MiB + 3, seed=12)
    s3.put_object("bucket", "obj", data, checksum_algorithm="CRC32C")
    s3.add_fault("bucket", "obj", Fault.reset(at_fraction=0.5, times=2), method="GET")
    done = _cat(s3, "obj", "--window", "2MiB", "--part-size", "512KiB")
    assert done.returncode == 0, done.stderr
    assert done.stdout == data
    assert done.stderr == b""


def test_cat_of_a_missing_object_is_one_line_and_exit_1(s3: FaultServer) -> None:
    s3.create_bucket("bucket")
    done = _cat(s3, "nope")
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode().count("\n") == 1
    assert done.stderr.startswith(b"s3pull: error: ")


def test_cat_into_a_reader_that_stops_early_ends_quietly(s3: FaultServer) -> None:
    s3.put_object("bucket", "obj", pattern(16 * MiB))
    with subprocess.Popen(
        ["head", "-c", "100"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as head:
        done = _cat(s3, "obj", stdout=head.stdin, capture_output=False, stderr=subprocess.PIPE)
        assert head.stdin is not None and head.stdout is not None
        head.stdin.close()
        assert len(head.stdout.read()) == 100
        assert head.wait(10) == 0
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
