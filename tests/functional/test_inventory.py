"""S3 Inventory reports served by the fault server: exact counts and sums
through the API and the CLI, URL-decoded keys, prefix filters, MD5 checks,
invisible faults, Parquet reports, and early exits that free the budget."""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
import random
import subprocess
import sys
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote_plus

import pytest

import s3pull
from s3pull import AsyncClient, Client, RetryConfig, TransferConfig, format_size
from s3pull.consumers import parse_manifest
from s3pull.testing import Fault, FaultServer

from ..support import pattern

CONFIG = TransferConfig(concurrency=4, retry=RetryConfig(backoff_base=0.001, backoff_cap=0.01))
MANIFEST = "s3://inventory/source/config/2024-05-01T01-00Z/manifest.json"
SCHEMA = [
    "Bucket",
    "Key",
    "Size",
    "LastModifiedDate",
    "ETag",
    "StorageClass",
    "IsLatest",
    "ReplicationStatus",
]


@dataclass(frozen=True)
class Row:
    key: str
    size: int
    modified: str
    etag: str
    storage_class: str


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    data_keys: list[str]

    @property
    def total(self) -> int:
        return sum(row.size for row in self.rows)


def _rows(files: int, per_file: int, seed: int = 1) -> list[list[Row]]:
    rng = random.Random(seed)
    odd = ["dir with space/", "plus+sign/", "ü/", "percent%25/", ""]
    return [
        [
            Row(
                key=f"{rng.choice(odd)}logs/{f:02d}/{i:06d}.json",
                size=rng.randrange(0, 10**9),
                modified=f"2024-04-{1 + i % 28:02d}T10:{i % 60:02d}:00.000Z",
                etag=hashlib.md5(f"{f}-{i}".encode()).hexdigest(),
                storage_class=rng.choice(["STANDARD", "GLACIER", "STANDARD_IA"]),
            )
            for i in range(per_file)
        ]
        for f in range(files)
    ]


def _csv_gz(rows: list[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    for r in rows:
        key = quote_plus(r.key, safe="/")  # inventory CSV keys are URL-encoded
        row = ["source", key, r.size, r.modified, r.etag, r.storage_class, "true", "COMPLETED"]
        writer.writerow(row)
    return gzip.compress(out.getvalue().encode(), 1)


def _parquet(rows: list[Row]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "bucket": ["source"] * len(rows),
            "key": [r.key for r in rows],  # not URL-encoded in Parquet reports
            "size": [r.size for r in rows],
            "last_modified_date": [datetime.fromisoformat(r.modified) for r in rows],
            "e_tag": [r.etag for r in rows],
            "storage_class": [r.storage_class for r in rows],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=1000)
    return out.getvalue()


def put_inventory(
    s3: FaultServer, files: int = 5, per_file: int = 3000, fmt: str = "CSV", bad_md5: int = -1
) -> Report:
    """A manifest and its data files, as AWS writes them, in bucket ``inventory``."""
    groups = _rows(files, per_file)
    entries = []
    data_keys = []
    for f, rows in enumerate(groups):
        body = _csv_gz(rows) if fmt == "CSV" else _parquet(rows)
        suffix = "csv.gz" if fmt == "CSV" else "parquet"
        key = f"source/config/data/{f:04d}-{hashlib.md5(bytes([f])).hexdigest()}.{suffix}"
        s3.put_object("inventory", key, body)
        md5 = hashlib.md5(body).hexdigest() if f != bad_md5 else "0" * 32
        entries.append({"key": key, "size": len(body), "MD5checksum": md5})
        data_keys.append(key)
    manifest = {
        "sourceBucket": "source",
        "destinationBucket": "arn:aws:s3:::inventory",
        "version": "2016-11-30",
        "creationTimestamp": "1714525200000",
        "fileFormat": fmt,
        "fileSchema": ", ".join(SCHEMA) if fmt == "CSV" else "message s3.inventory { ... }",
        "files": entries,
    }
    s3.put_object(
        "inventory", MANIFEST.removeprefix("s3://inventory/"), json.dumps(manifest).encode()
    )
    return Report([row for rows in groups for row in rows], data_keys)


def _client(s3: FaultServer, config: TransferConfig = CONFIG) -> AsyncClient:
    return AsyncClient(endpoint_url=s3.endpoint_url, config=config, subscribers=[])


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
async def test_every_record_once_with_decoded_keys(s3: FaultServer, fmt: str) -> None:
    report = put_inventory(s3, fmt=fmt)
    async with _client(s3) as client:
        inventory = client.inventory(MANIFEST, workers=3)
        records = [r async for r in inventory.records()]
        assert client.budget.used == 0
    assert len(records) == len(report.rows) == 15_000
    assert sum(r.size or 0 for r in records) == report.total
    by_key = {r.key: r for r in records}
    assert set(by_key) == {row.key for row in report.rows}  # URL-decoded, spaces and + kept
    row = report.rows[1234]
    got = by_key[row.key]
    assert (got.bucket, got.size, got.etag, got.storage_class) == (
        "source",
        row.size,
        row.etag,
        row.storage_class,
    )
    assert got.last_modified == datetime.fromisoformat(row.modified)
    if fmt == "CSV":  # the CSV report has more columns than the Parquet one
        assert got.is_latest is True
        assert got.extra == {"ReplicationStatus": "COMPLETED"}


async def test_a_prefix_filter_keeps_only_matching_keys(s3: FaultServer) -> None:
    report = put_inventory(s3, files=3, per_file=2000)
    prefix = "dir with space/"
    async with _client(s3) as client:
        keys = [r.key async for r in client.inventory(MANIFEST).records(prefix=prefix)]
    expected = sorted(row.key for row in report.rows if row.key.startswith(prefix))
    assert sorted(keys) == expected and len(expected) > 100


async def test_a_data_file_md5_mismatch_is_an_error(s3: FaultServer) -> None:
    put_inventory(s3, files=4, per_file=1000, bad_md5=2)
    async with _client(s3) as client:
        with pytest.raises(s3pull.IntegrityError, match="MD5 mismatch") as caught:
            async for _ in client.inventory(MANIFEST).records():
                pass
        assert client.budget.used == 0
    assert "0002-" in str(caught.value)


async def test_faults_mid_file_are_invisible(s3: FaultServer) -> None:
    report = put_inventory(s3, files=3, per_file=20_000)
    for key in report.data_keys:
        s3.add_fault("inventory", key, Fault.reset(at_fraction=0.5, times=2), method="GET")
    config = TransferConfig(concurrency=4, retry=RetryConfig(backoff_base=0.001, backoff_cap=0.01))
    async with _client(s3, config) as client:
        inventory = client.inventory(MANIFEST, window="2MiB")
        count = total = 0
        async for batch in inventory.batches():
            count += len(batch)
            total += sum(r.size or 0 for r in batch)
    assert (count, total) == (len(report.rows), report.total)
    assert [r.outcome for r in s3.requests].count("reset") == 6


async def test_stopping_early_frees_the_budget_and_stops_fetching(s3: FaultServer) -> None:
    report = put_inventory(s3, files=6, per_file=20_000)
    async with _client(s3) as client:
        async with aclosing(client.inventory(MANIFEST, window="2MiB").records()) as records:
            async for _ in records:
                break
        assert client.budget.used == 0
        # Counted as received: the GETs that were out when the reader
        # stopped are recorded only once they end, cut off or not.
        started = s3.started_requests
        await asyncio.sleep(0.3)
        assert s3.started_requests == started
    fetched = {r.key for r in s3.requests} & set(report.data_keys)
    assert len(fetched) <= 4  # the workers' first files; the other two were never asked for


async def test_while_it_reads_nothing_lends_the_readers_budget_away(s3: FaultServer) -> None:
    # A pool's parent lends its workers their shares only from an idle
    # budget: the reader planned its workers and windows on its share, and
    # between two of its data files it may hold nothing at all.
    put_inventory(s3, files=3, per_file=100)
    async with _client(s3) as client:
        lent = []
        async with aclosing(client.inventory(MANIFEST, memory_share=0.5).records()) as records:
            async for _ in records:
                await asyncio.sleep(0.001)  # the reader's workers run ahead, then idle
                lent.append(client.budget.lend(1, holdable=1))
                if lent[-1] is not None:
                    lent[-1].give_back()
        assert lent == [None] * 300
        lending = client.budget.lend(1, holdable=1)
        assert lending is not None
        lending.give_back()


def test_the_workers_and_window_fit_the_budget(s3: FaultServer) -> None:
    small = AsyncClient(config=TransferConfig(memory_limit="16MiB"), subscribers=[])
    inventory = small.inventory(MANIFEST, workers=8, window="8MiB")
    per_worker = inventory.window + 2 * 1024 * 1024 + 2 * small.config.stream_cost
    assert inventory.workers * per_worker <= small.config.memory_limit
    assert inventory.workers >= 2 and inventory.window >= 1024 * 1024


def test_the_sync_client_reads_an_inventory(s3: FaultServer) -> None:
    report = put_inventory(s3, files=2, per_file=1500)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        sizes = [r.size for r in client.iter_inventory(MANIFEST, workers=2)]
    assert sum(s or 0 for s in sizes) == report.total and len(sizes) == 3000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fileFormat": "ORC"}, "ORC inventories are not supported"),
        ({"fileFormat": "XML"}, "unknown inventory fileFormat"),
        ({"files": None}, "not an S3 Inventory manifest"),
        ({"fileSchema": "Bucket, Size"}, "no Key column"),
    ],
)
def test_bad_manifests_are_refused_clearly(change: dict[str, object], message: str) -> None:
    manifest = {
        "sourceBucket": "b",
        "destinationBucket": "arn:aws:s3:::inv",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size",
        "files": [],
    }
    with pytest.raises(s3pull.ConfigError, match=message):
        parse_manifest(json.dumps({**manifest, **change}))


def _cli(s3: FaultServer, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "s3pull", "inventory", MANIFEST]
    return subprocess.run(
        [*command, "--endpoint-url", s3.endpoint_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_counts_sums_and_filters(s3: FaultServer, tmp_path: Path) -> None:
    report = put_inventory(s3, files=4, per_file=2500)
    done = _cli(s3, "--count", "--sum-size", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(report.rows)), str(report.total)]

    prefix = "plus+sign/"
    out = tmp_path / "records.jsonl"
    done = _cli(s3, "--filter-prefix", prefix, "--to-jsonl", str(out), "--count")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [row for row in report.rows if row.key.startswith(prefix)]
    assert done.stdout.split() == [str(len(expected))]
    assert sorted(line["key"] for line in lines) == sorted(row.key for row in expected)
    assert {line["bucket"] for line in lines} == {"source"}


def test_cli_reports_an_md5_mismatch_as_a_failure(s3: FaultServer) -> None:
    put_inventory(s3, files=2, per_file=500, bad_md5=1)
    done = _cli(s3, "--count")
    assert done.returncode == 1
    assert "MD5 mismatch" in done.stderr and done.stderr.count("\n") == 1


def test_cli_refuses_an_orc_inventory_as_a_usage_error(s3: FaultServer) -> None:
    manifest = {"sourceBucket": "s", "destinationBucket": "inv", "fileFormat": "ORC", "files": []}
    s3.put_object(
        "inventory", MANIFEST.removeprefix("s3://inventory/"), json.dumps(manifest).encode()
    )
    done = _cli(s3, "--count")
    assert done.returncode == 2
    assert "ORC inventories are not supported" in done.stderr


def _put_downloadable_inventory(s3: FaultServer) -> dict[str, bytes]:
    """An inventory of real objects in bucket ``source`` (plus one that is gone
    and one hostile key); returns the objects that exist and are safe."""
    objects = {
        f"{folder}obj-{i:03d}.bin": pattern(50 + i * 37, seed=i)
        for i, folder in enumerate(["", "dir with space/", "plus+sign/", "ü/"] * 10)
    }
    for key, data in objects.items():
        s3.put_object("source", key, data, last_modified=1_714_000_000)
    s3.put_object("source", "../escape.bin", b"evil")
    listed = {**objects, "gone.bin": b"x" * 7, "../escape.bin": b"evil"}
    rows = [
        Row(key, len(data), "2024-04-24T23:06:40.000Z", hashlib.md5(data).hexdigest(), "STANDARD")
        for key, data in listed.items()
    ]
    body = _csv_gz(rows)
    key = "source/config/data/0000.csv.gz"
    s3.put_object("inventory", key, body)
    manifest = {
        "sourceBucket": "source",
        "destinationBucket": "arn:aws:s3:::inventory",
        "fileFormat": "CSV",
        "fileSchema": ", ".join(SCHEMA),
        "files": [{"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()}],
    }
    s3.put_object(
        "inventory", MANIFEST.removeprefix("s3://inventory/"), json.dumps(manifest).encode()
    )
    return objects


@pytest.mark.parametrize("processes", ["auto", "2"])
def test_cli_download_fetches_exactly_the_listed_keys(
    s3: FaultServer, tmp_path: Path, processes: str
) -> None:
    objects = _put_downloadable_inventory(s3)
    s3.put_object("source", "not-in-the-inventory.bin", b"no")
    out = tmp_path / "out"
    done = _cli(s3, "--download", str(out), "--count", "--processes", processes)
    assert done.returncode == 1  # one listed object is gone, one key is hostile
    assert done.stdout.split() == [str(len(objects) + 2)]
    assert "40 downloaded, 2 failed (NotFoundError: 1, UnsafePathError: 1)" in done.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == objects
    requests = [r for r in s3.requests if r.bucket == "source"]
    # no listing of the source bucket, no HEAD: one GET per listed object
    assert {r.method for r in requests} == {"GET"}
    assert sorted(r.key for r in requests) == sorted([*objects, "gone.bin"])
    assert not (tmp_path / "escape.bin").exists()


def test_cli_download_dry_run_writes_nothing(s3: FaultServer, tmp_path: Path) -> None:
    objects = _put_downloadable_inventory(s3)
    out = tmp_path / "out"
    done = _cli(s3, "--download", str(out), "--dry-run", "--count")
    assert done.returncode == 1  # the hostile key would be refused for real too
    total = sum(len(data) for data in objects.values()) + 7  # and gone.bin, as listed
    assert f"dry run: {len(objects) + 1} to download ({format_size(total)})" in done.stderr
    assert "1 failed (UnsafePathError: 1)" in done.stderr
    assert not out.exists()
    assert [r for r in s3.requests if r.bucket == "source"] == []  # the records tell all

    usage = _cli(s3, "--dry-run", "--count")
    assert usage.returncode == 2 and "only with --download" in usage.stderr


async def _download_inventory_over_workers(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: TransferConfig
) -> tuple[s3pull.BatchResult, list[int]]:
    """What ``inventory --download --processes N`` does, through the API: the
    reader gets half the budget. Returns the batch and the budget the
    workers were each given (one init line per pool). However the batch
    ends, every worker process has ended with it."""
    from s3pull.executors import _pool

    budgets: list[int] = []
    workers: list[asyncio.subprocess.Process] = []
    init_line, spawn = _pool.init_line, _pool._spawn

    def recorded(*args: object, **kwargs: object) -> bytes:
        line = init_line(*args, **kwargs)  # type: ignore[arg-type]
        budgets.append(json.loads(line)["init"]["config"]["memory_limit"])
        return line

    async def spawned() -> asyncio.subprocess.Process:
        workers.append(await spawn())
        return workers[-1]

    monkeypatch.setattr(_pool, "init_line", recorded)
    monkeypatch.setattr(_pool, "_spawn", spawned)
    try:
        async with AsyncClient(
            endpoint_url=s3.endpoint_url, config=config, subscribers=[]
        ) as client:
            records = client.inventory(MANIFEST, memory_share=0.5).records()
            batch = await client.download_many(records, tmp_path)
    finally:
        assert workers and all(w.returncode is not None for w in workers)
    return batch, budgets


def test_process_workers_share_what_the_reader_leaves_of_the_budget(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader keeps half of the one budget in the parent; the workers
    # share the other half, so the tree holds the budget and no more.
    objects = _put_downloadable_inventory(s3)
    config = replace(CONFIG, memory_limit="32MiB", processes=2)
    download = _download_inventory_over_workers(s3, tmp_path, monkeypatch, config)
    batch, budgets = asyncio.run(download)
    assert budgets == [8 * 1024 * 1024]  # two of them, and the reader's 16 MiB
    assert (batch.downloaded, batch.failed) == (40, 2)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in files} == objects


def test_workers_that_the_readers_share_leaves_no_stream_are_refused(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put_downloadable_inventory(s3)
    # 9 MiB / 8 processes passes the config's check; 4.5 MiB left by the
    # reader does not give 8 workers a 768 KiB stream each.
    config = replace(CONFIG, memory_limit="9MiB", processes=8)
    with pytest.raises(s3pull.ConfigError, match="cannot be shared by 8 processes once"):
        asyncio.run(_download_inventory_over_workers(s3, tmp_path, monkeypatch, config))
    assert not any(tmp_path.rglob("*"))


def test_sync_client_downloads_inventory_records(s3: FaultServer, tmp_path: Path) -> None:
    objects = _put_downloadable_inventory(s3)
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        records = client.iter_inventory(MANIFEST, prefix="plus+sign/")
        batch = client.download_many(records, tmp_path, skip_existing=True)
    assert batch.ok and batch.downloaded == 10
    assert (tmp_path / "plus+sign/obj-002.bin").read_bytes() == objects["plus+sign/obj-002.bin"]


def _put_versioned_inventory(s3: FaultServer, fmt: str) -> dict[str, bytes]:
    """An inventory of all versions of a versioned bucket: ``a.txt`` overwritten
    once, ``b.txt`` deleted (its delete marker is current), ``c.txt`` written
    once. Returns what each key holds now."""
    s3.create_bucket("source", versioned=True)
    old_a = s3.put_object("source", "a.txt", b"old a")
    new_a = s3.put_object("source", "a.txt", b"new a, longer")
    old_b = s3.put_object("source", "b.txt", b"b")
    s3.delete_object("source", "b.txt")
    c = s3.put_object("source", "c.txt", b"c")
    # (key, object or None for the delete marker, version, is latest)
    versions = [
        ("a.txt", old_a, old_a.version_id, False),
        ("a.txt", new_a, new_a.version_id, True),
        ("b.txt", old_b, old_b.version_id, False),
        ("b.txt", None, "marker-b", True),
        ("c.txt", c, c.version_id, True),
    ]
    columns: dict[str, list[object]] = {
        "Bucket": ["source"] * len(versions),
        "Key": [key for key, *_ in versions],
        "VersionId": [version for _, _, version, _ in versions],
        "IsLatest": [latest for *_, latest in versions],
        "IsDeleteMarker": [obj is None for _, obj, _, _ in versions],
        "Size": [None if obj is None else obj.size for _, obj, _, _ in versions],
        "ETag": [None if obj is None else obj.etag.strip('"') for _, obj, _, _ in versions],
    }
    if fmt == "CSV":
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL)
        for row in zip(*columns.values(), strict=True):
            writer.writerow(
                ["" if v is None else str(v).lower() if v in (True, False) else v for v in row]
            )
        body = gzip.compress(out.getvalue().encode())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Parquet reports name their columns in snake case.
        names = ["bucket", "key", "version_id", "is_latest", "is_delete_marker", "size", "e_tag"]
        table = pa.table(dict(zip(names, columns.values(), strict=True)))
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        body = buffer.getvalue()
    key = f"source/config/data/0000.{'csv.gz' if fmt == 'CSV' else 'parquet'}"
    s3.put_object("inventory", key, body)
    manifest = {
        "sourceBucket": "source",
        "destinationBucket": "arn:aws:s3:::inventory",
        "fileFormat": fmt,
        "fileSchema": ", ".join(columns) if fmt == "CSV" else "message s3.inventory { ... }",
        "files": [{"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()}],
    }
    s3.put_object(
        "inventory", MANIFEST.removeprefix("s3://inventory/"), json.dumps(manifest).encode()
    )
    return {"a.txt": b"new a, longer", "c.txt": b"c"}


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_an_inventory_of_all_versions_downloads_the_current_ones(
    s3: FaultServer, tmp_path: Path, fmt: str
) -> None:
    current = _put_versioned_inventory(s3, fmt)
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        records = list(client.iter_inventory(MANIFEST))
        batch = client.download_many(records, tmp_path)
    latest = {(r.key, r.is_latest, r.is_delete_marker) for r in records}
    assert latest == {
        ("a.txt", False, False),
        ("a.txt", True, False),
        ("b.txt", False, False),
        ("b.txt", True, True),
        ("c.txt", True, False),
    }
    assert all(r.version_id for r in records) and not any(r.extra for r in records)
    # Old versions and the delete marker are passed over, not clashes or 404s.
    assert batch.ok, batch.failures
    assert (batch.downloaded, batch.noncurrent) == (2, 3)
    got = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert got == current
    gets = [r for r in s3.requests if r.bucket == "source"]
    assert sorted(r.key for r in gets) == ["a.txt", "c.txt"]
    assert all(r.version_id is None for r in gets)  # as a listing's GET: no GetObjectVersion


def test_cli_download_of_an_inventory_of_all_versions(s3: FaultServer, tmp_path: Path) -> None:
    current = _put_versioned_inventory(s3, "CSV")
    done = _cli(s3, "--download", str(tmp_path / "out"), "--to-jsonl", "-")
    assert done.returncode == 0, done.stderr
    assert "2 downloaded, 3 noncurrent versions or delete markers passed over" in done.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == current
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    marker = next(line for line in lines if line["version_id"] == "marker-b")
    assert marker["is_latest"] is True and marker["is_delete_marker"] is True
    assert marker["size"] is None
