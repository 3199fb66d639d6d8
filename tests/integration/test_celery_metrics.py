"""Metrics under Celery: each worker child records into prometheus_client's
multiprocess files, the worker serves their sum on ``/metrics``
(``s3pull worker --metrics-port``), the directory is emptied at start and a
child's live gauges leave with it."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3pull import AsyncClient, BatchResult, RetryConfig, TransferConfig
from s3pull.celery import CeleryExecutor, make_app
from s3pull.testing import Fault, FaultServer

from ..support import free_port
from .celery_fleet import RedisServer, redis_server, workers

pytestmark = pytest.mark.timeout(300)
KiB = 1024


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    with redis_server(tmp_path / "redis") as server:
        yield server


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_worker_serves_its_childrens_metrics(redis: RedisServer, tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    stale = directory / "counter_999999.db"
    stale.write_bytes(b"from an earlier run")
    port = free_port()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with FaultServer() as s3:
        s3.put_many("fleet", (f"m/{i:02d}.bin" for i in range(20)), size=64 * KiB)
        s3.put_object("fleet", "m/broken.bin", b"x" * 100)
        s3.add_fault("fleet", "m/broken.bin", Fault.status(500), method="GET")
        with workers(
            redis.url, tmp_path / "workers", env=env, cli=True, extra=["--metrics-port", str(port)]
        ) as started:
            assert not stale.exists()  # emptied at the worker's start

            async def run() -> BatchResult:
                config = TransferConfig(retry=RetryConfig(max_attempts=2, backoff_base=0.001))
                with closing(make_app(redis.url)) as app:
                    async with AsyncClient(
                        endpoint_url=s3.endpoint_url,
                        config=config,
                        executor=CeleryExecutor(app, shard_items=5),
                        subscribers=[],
                    ) as client:
                        return await client.download_prefix("s3://fleet/m/", tmp_path / "out")

            batch = asyncio.run(run())
            assert (batch.downloaded, batch.failed) == (20, 1), batch.summary()
            metrics = scrape(port)
            assert metrics[("s3pull_downloaded_bytes_total", ())] == 20 * 64 * KiB
            assert metrics[("s3pull_failures_total", (("error", "server"),))] == 1
            assert metrics[("s3pull_downloads_in_flight", ())] == 0
            ok = (("outcome", "ok"), ("size_class", "<1MiB"))
            assert metrics[("s3pull_download_duration_seconds_count", ok)] == 20
            children = started[0].children()
            assert children
            assert any(f"_{pid}.db" in p.name for pid in children for p in directory.iterdir())
        # Every child marked dead at its exit: no live gauge file of theirs remains.
        assert [p.name for p in directory.glob("gauge_live*.db")] == []
