"""Consumers against the fault-injecting server: lines and CSV rows identical
to the source, gzip or plain, sync or async; early exits that stop fetching
and give the budget back; Parquet batches from a temp file."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import random
import threading
from contextlib import aclosing
from pathlib import Path

import pytest

import s3pull
from s3pull import AsyncClient, Client, RetryConfig, TransferConfig
from s3pull.testing import Fault, FaultServer

from ..support import leftovers

MiB = 1024 * 1024
CONFIG = TransferConfig(concurrency=4, retry=RetryConfig(backoff_base=0.001, backoff_cap=0.01))
SMALL = {"window": 2 * MiB, "part_size": 512 * 1024}


def _rows(count: int, seed: int = 0) -> list[list[str]]:
    """Rows with what makes CSV hard: quotes, commas, newlines inside fields, UTF-8."""
    rng = random.Random(seed)
    odd = ['a "quoted" word', "comma, inside", "two\nlines", "naïve café ✓", ""]
    return [
        [str(i), f"key/{rng.randrange(10**9)}", rng.choice(odd), str(i * 7)] for i in range(count)
    ]


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _lines_text(count: int) -> str:
    rng = random.Random(count)
    lines = [f"{i} {'x' * rng.randrange(0, 300)} ü" for i in range(count)]
    lines[5] = ""  # an empty line stays a line
    return "\n".join(lines) + "\n"


def _async_client(s3: FaultServer, config: TransferConfig = CONFIG) -> AsyncClient:
    return AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[])


def _sync_client(s3: FaultServer) -> Client:
    return Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[])


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip", "plain"])
async def test_async_lines_and_rows_are_the_source(s3: FaultServer, compressed: bool) -> None:
    rows = _rows(40_000)
    text = _lines_text(30_000)
    suffix = ".gz" if compressed else ""

    def put(key: str, body: str) -> None:
        data = body.encode()
        s3.put_object("bucket", key + suffix, gzip.compress(data, 1) if compressed else data)

    put("rows.csv", _csv_text(rows))
    put("app.log", text)
    async with _async_client(s3) as client:
        got_rows = [row async for row in client.iter_csv(f"s3://bucket/rows.csv{suffix}", **SMALL)]
        got_lines = [line async for line in client.iter_lines(f"s3://bucket/app.log{suffix}")]
        assert client.budget.used == 0
    assert got_rows == rows
    assert got_lines == text.split("\n")[:-1]


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip", "plain"])
def test_sync_lines_and_rows_are_the_source(s3: FaultServer, compressed: bool) -> None:
    rows = _rows(20_000, seed=3)
    body = _csv_text([["id", "key", "note", "n"], *rows]).encode()
    s3.put_object("bucket", "rows.csv", gzip.compress(body) if compressed else body)
    compression = "gzip" if compressed else None
    with _sync_client(s3) as client:
        dicts = list(client.iter_csv("s3://bucket/rows.csv", header=True, compression=compression))
        lines = list(s3pull.iter_lines(client, "s3://bucket/rows.csv", compression=compression))
    assert dicts == [dict(zip(["id", "key", "note", "n"], row, strict=True)) for row in rows]
    assert "\n".join(lines) + "\n" == body.decode().replace("\r\n", "\n")


async def test_gzip_is_also_recognised_by_content_encoding(s3: FaultServer) -> None:
    body = gzip.compress(b"one\ntwo\n")
    s3.put_object("bucket", "data.txt", body, content_encoding="gzip")
    async with _async_client(s3) as client:
        assert [line async for line in client.iter_lines("s3://bucket/data.txt")] == ["one", "two"]


async def test_faults_mid_file_are_invisible_to_the_parser(s3: FaultServer) -> None:
    rows = _rows(60_000, seed=5)
    s3.put_object("bucket", "rows.csv.gz", gzip.compress(_csv_text(rows).encode(), 1))
    s3.add_fault("bucket", "rows.csv.gz", Fault.reset(at_fraction=0.5, times=3), method="GET")
    async with _async_client(s3) as client:
        got = [row async for row in client.iter_csv("s3://bucket/rows.csv.gz", **SMALL)]
    assert got == rows
    assert [r.outcome for r in s3.requests].count("reset") == 3  # they really happened


async def test_breaking_out_early_stops_fetching_and_frees_the_budget(s3: FaultServer) -> None:
    s3.put_object("bucket", "big.log", _lines_text(400_000).encode())  # ~60 MB
    async with _async_client(s3) as client:
        async with aclosing(client.iter_lines("s3://bucket/big.log", **SMALL)) as lines:
            async for line in lines:
                if line.startswith("1000 "):
                    break
        assert client.budget.used == 0
        # The thread's last act is to say it is done; it leaves a moment later.
        for _ in range(100):
            if not [t for t in threading.enumerate() if t.name == "s3pull-parse"]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the parser thread is still running")
        sent = s3.bytes_sent("bucket", "big.log")
        await asyncio.sleep(0.3)
        assert s3.bytes_sent("bucket", "big.log") == sent  # nothing fetched after the exit
    assert sent < 12 * MiB


async def test_an_abandoned_generator_is_cleaned_up_by_the_loop(s3: FaultServer) -> None:
    s3.put_object("bucket", "big.log", _lines_text(200_000).encode())
    async with _async_client(s3) as client:
        async for _ in client.iter_lines("s3://bucket/big.log", **SMALL):
            break  # no aclosing: the loop's async-generator finalizer closes it
        for _ in range(100):
            if client.budget.used == 0:
                break
            await asyncio.sleep(0.02)
        assert client.budget.used == 0


async def test_a_cancelled_consumer_task_frees_the_budget(s3: FaultServer) -> None:
    s3.put_object("bucket", "rows.csv", _csv_text(_rows(100_000)).encode())
    async with _async_client(s3) as client:

        async def consume() -> None:
            async with aclosing(client.iter_csv("s3://bucket/rows.csv", **SMALL)) as rows:
                async for _ in rows:
                    await asyncio.sleep(0.001)  # a slow consumer, cancelled in here

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.budget.used == 0


def test_sync_early_exit_closes_the_stream(s3: FaultServer) -> None:
    text = _lines_text(300_000)
    s3.put_object("bucket", "big.log", text.encode())
    with _sync_client(s3) as client:
        lines = client.iter_lines("s3://bucket/big.log", window="2MiB", part_size="512KiB")
        assert next(lines) == text[: text.index("\n")]
        lines.close()
        sent = s3.bytes_sent("bucket", "big.log")
        assert sent < 8 * MiB


async def test_a_parse_error_reaches_the_consumer_and_cleans_up(s3: FaultServer) -> None:
    s3.put_object("bucket", "bad.csv.gz", b"not gzip at all" * 1000)
    async with _async_client(s3) as client:
        with pytest.raises(gzip.BadGzipFile):
            async for _ in client.iter_csv("s3://bucket/bad.csv.gz"):
                pass
        assert client.budget.used == 0


async def test_zstd_is_refused_before_any_request(s3: FaultServer) -> None:
    s3.put_object("bucket", "rows.csv.zst", b"\x28\xb5\x2f\xfd")
    async with _async_client(s3) as client:
        with pytest.raises(s3pull.ConfigError, match="zstd"):
            client.iter_csv("s3://bucket/rows.csv.zst")
        with pytest.raises(s3pull.ConfigError, match="compression must be"):
            client.iter_lines("s3://bucket/rows.csv.zst", compression="bz2")
    assert s3.requests == []


def _parquet_bytes(count: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"key": [f"k{i}" for i in range(count)], "size": list(range(count))})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=10_000)
    return out.getvalue()


async def test_parquet_batches_come_from_a_temp_file_that_is_removed(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "t.parquet", _parquet_bytes(25_000))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    async with _async_client(s3) as client:
        total = 0
        async for batch in client.iter_parquet_batches(
            "s3://bucket/t.parquet", columns=["size"], batch_size=4000
        ):
            assert batch.num_columns == 1 and batch.num_rows <= 4000
            total += sum(batch.column(0).to_pylist())
    assert total == sum(range(25_000))
    assert leftovers(tmp_path) == []
    with _sync_client(s3) as sync:
        rows = sum(b.num_rows for b in sync.iter_parquet_batches("s3://bucket/t.parquet"))
    assert rows == 25_000
