"""Many ordered streams on one client, against the fault-injecting server:
however many are open at once, every one completes and the budget holds.

Each test is bounded by a timeout well under the suite's: a regression that
deadlocks the budget fails here instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import threading
from pathlib import Path

import pytest

import s3pull
from s3pull import AsyncClient, Client, RetryConfig, TransferConfig
from s3pull.testing import FaultServer, generate_bytes

from ..support import pattern

MiB = 1024 * 1024
RETRY = RetryConfig(backoff_base=0.001, backoff_cap=0.01)
#: Far more than any of these takes on a loaded machine; far less than the suite's 120 s.
DEADLINE = 60


def _sha(key: str, size: int) -> str:
    return hashlib.sha256(generate_bytes(key, size, 0)).hexdigest()


def _put(s3: FaultServer, count: int, size: int) -> dict[str, str]:
    """``count`` generated objects of ``size`` bytes; their SHA-256 by key."""
    keys = {f"big-{i}": _sha(f"big-{i}", size) for i in range(count)}
    for key in keys:
        s3.put_generated("bucket", key, size)
    return keys


async def _digest(client: AsyncClient, key: str, **options: object) -> str:
    digest = hashlib.sha256()
    async with client.open(f"s3://bucket/{key}", **options) as stream:  # type: ignore[arg-type]
        async for chunk in stream:
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.timeout(DEADLINE)
def test_two_threads_read_64_mib_each_on_a_default_sync_client(s3: FaultServer) -> None:
    expected = _put(s3, 2, 64 * MiB)
    got: dict[str, str] = {}
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:

        def read(key: str) -> None:
            got[key] = hashlib.sha256(client.open(f"s3://bucket/{key}").read()).hexdigest()

        threads = [threading.Thread(target=read, args=(key,)) for key in expected]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        budget = client._client().budget
        assert budget.peak <= budget.limit and budget.used == 0
    assert got == expected


@pytest.mark.timeout(DEADLINE)
async def test_gather_of_two_default_streams(s3: FaultServer) -> None:
    expected = _put(s3, 2, 64 * MiB)
    async with AsyncClient(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        digests = await asyncio.gather(*(_digest(client, key) for key in expected))
        assert client.budget.peak <= client.budget.limit and client.budget.used == 0
    assert dict(zip(expected, digests, strict=True)) == expected


@pytest.mark.timeout(DEADLINE)
async def test_eight_streams_with_8_mib_windows(s3: FaultServer) -> None:
    expected = _put(s3, 8, 16 * MiB)
    async with AsyncClient(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        digests = await asyncio.gather(*(_digest(client, key, window="8MiB") for key in expected))
        assert client.budget.peak <= client.budget.limit and client.budget.used == 0
    assert dict(zip(expected, digests, strict=True)) == expected


@pytest.mark.timeout(DEADLINE)
async def test_more_streams_than_the_budget_holds_are_admitted_in_turn(s3: FaultServer) -> None:
    # 8 MiB leaves room for a handful of 1 MiB-part windows, not for twelve:
    # the others wait for a window to close, and none waits forever.
    expected = _put(s3, 12, 3 * MiB + 17)
    config = TransferConfig(memory_limit="8MiB", retry=RETRY)
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        digests = await asyncio.gather(*(_digest(client, key) for key in expected))
        assert client.budget.peak <= 8 * MiB and client.budget.used == 0
    assert dict(zip(expected, digests, strict=True)) == expected


def _put_csv(s3: FaultServer, count: int) -> dict[str, list[list[str]]]:
    tables = {}
    for n in range(count):
        rows = [[str(i), f"key-{n}-{i}", "x" * 40] for i in range(120_000)]  # ~7 MiB each
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        s3.put_object("bucket", f"rows-{n}.csv", text.getvalue().encode())
        tables[f"rows-{n}.csv"] = rows
    return tables


@pytest.mark.timeout(DEADLINE)
def test_two_iter_csv_read_in_step_in_one_thread(s3: FaultServer) -> None:
    # Both are open at once and neither is read to its end before the other:
    # waiting for the first to close before admitting the second would hang.
    tables = _put_csv(s3, 2)
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        first, second = (client.iter_csv(f"s3://bucket/{key}") for key in tables)
        pairs = list(zip(first, second, strict=True))
    assert [a for a, _ in pairs] == tables["rows-0.csv"]
    assert [b for _, b in pairs] == tables["rows-1.csv"]


@pytest.mark.timeout(DEADLINE)
async def test_two_async_iter_csv_at_once(s3: FaultServer) -> None:
    # 12 MiB: windows of 6 MiB, smaller than the objects, so that each
    # pipeline needs GETs after the other has opened.
    tables = _put_csv(s3, 2)
    config = TransferConfig(memory_limit="12MiB", retry=RETRY)
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:

        async def rows(key: str) -> list[list[str]]:
            return [row async for row in client.iter_csv(f"s3://bucket/{key}")]

        got = await asyncio.gather(*(rows(key) for key in tables))
        assert client.budget.peak <= client.budget.limit and client.budget.used == 0
    assert got == list(tables.values())


@pytest.mark.timeout(DEADLINE)
async def test_streams_beside_a_file_download_and_a_batch(s3: FaultServer, tmp_path: Path) -> None:
    # Downloads draw on the same budget, a GET at a time; streams hold their
    # windows for as long as they are open. Both must keep moving.
    expected = _put(s3, 3, 24 * MiB)
    s3.put_generated("bucket", "file.bin", 48 * MiB)
    small = {f"many/{i}": pattern(300_000 + i, seed=i) for i in range(40)}
    for key, data in small.items():
        s3.put_object("bucket", key, data)
    async with AsyncClient(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        streams = asyncio.gather(*(_digest(client, key) for key in expected))
        download = client.download_file("s3://bucket/file.bin", tmp_path / "file.bin")
        batch = client.download_prefix("s3://bucket/many/", tmp_path / "many")
        digests, result, outcome = await asyncio.gather(streams, download, batch)
        assert client.budget.peak <= client.budget.limit and client.budget.used == 0
    assert dict(zip(expected, digests, strict=True)) == expected
    assert result.bytes == 48 * MiB
    assert outcome.ok and outcome.downloaded == len(small), outcome.failures


async def test_a_part_larger_than_streams_may_hold_fails_fast(s3: FaultServer) -> None:
    s3.put_object("bucket", "obj", b"x")
    config = TransferConfig(memory_limit="4MiB", retry=RETRY)
    async with AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        with pytest.raises(s3pull.ConfigError, match="leaves no room"):
            async with client.open("s3://bucket/obj", window="4MiB", part_size="4MiB"):
                pass
        assert client.budget.used == 0
    assert [r.method for r in s3.requests] == []
