"""Prometheus metrics, scraped over HTTP from a real ``/metrics`` endpoint
while s3pull downloads from the fault server and after."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import s3pull
from s3pull import Client, RetryConfig, TransferConfig
from s3pull.metrics import Metrics, serve
from s3pull.testing import Fault, FaultServer

from ..support import free_port, pattern

MiB = 1024 * 1024
CONFIG = TransferConfig(
    part_size=8 * MiB, retry=RetryConfig(max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
)


@pytest.fixture
def scrape() -> Iterator[tuple[CollectorRegistry, str]]:
    registry = CollectorRegistry()
    port = free_port()
    server = serve(port, registry=registry)
    yield registry, f"http://127.0.0.1:{port}/metrics"
    server.close()


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_values_move_while_bytes_arrive_and_settle_after(
    s3: FaultServer, scrape: tuple[CollectorRegistry, str], tmp_path: Path
) -> None:
    registry, url = scrape
    size = 4 * MiB
    s3.put_object("bucket", "slow.bin", pattern(size))
    # A quarter MiB every 0.1 s: the download takes ~1.6 s, long enough to be seen mid-way.
    s3.add_fault("bucket", "slow.bin", Fault.drip(chunk=256 * 1024, interval=0.1), method="GET")
    with (
        Client(
            endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[], metrics=registry
        ) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        running = pool.submit(client.download_file, "s3://bucket/slow.bin", tmp_path / "slow.bin")
        during: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []
        deadline = time.monotonic() + 60
        while not running.done() and time.monotonic() < deadline:
            scraped = samples(url)
            if 0 < value(scraped, "s3pull_downloaded_bytes_total") < size:
                during.append(scraped)
            time.sleep(0.05)
        result = running.result()
        after = samples(url)
    assert result.bytes == size
    assert len(during) >= 2, "no scrape saw the download in flight"
    first, last = during[0], during[-1]
    assert value(first, "s3pull_downloads_in_flight") == 1
    assert value(first, "s3pull_temp_bytes") == value(first, "s3pull_downloaded_bytes_total")
    assert value(last, "s3pull_downloaded_bytes_total") > value(
        first, "s3pull_downloaded_bytes_total"
    )
    assert value(first, "s3pull_memory_budget_bytes") == CONFIG.memory_limit
    # After: every byte counted once, nothing in flight or in temp files.
    assert value(after, "s3pull_downloaded_bytes_total") == size
    assert value(after, "s3pull_downloads_in_flight") == 0
    assert value(after, "s3pull_temp_bytes") == 0
    assert value(after, "s3pull_memory_budget_in_use_bytes") == 0
    assert (
        value(
            after, "s3pull_download_duration_seconds_count", size_class="1MiB-64MiB", outcome="ok"
        )
        == 1
    )
    # The first GET learns the size: no HEAD.
    assert value(after, "s3pull_requests_total", op="GET", status_class="2xx") == 1
    assert value(after, "s3pull_first_byte_seconds_count", op="GET") == 1
    assert value(after, "s3pull_breaker_open", scope="object") == 0


def test_a_retry_and_a_failure_show_with_their_labels(
    s3: FaultServer, scrape: tuple[CollectorRegistry, str], tmp_path: Path
) -> None:
    registry, url = scrape
    s3.put_object("bucket", "flaky.bin", pattern(MiB + 3))
    s3.put_object("bucket", "broken.bin", pattern(2 * MiB))
    s3.add_fault("bucket", "flaky.bin", Fault.status(503, times=1), method="GET")
    s3.add_fault("bucket", "broken.bin", Fault.status(500), method="GET")
    with Client(
        endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[], metrics=registry
    ) as client:
        client.download_file("s3://bucket/flaky.bin", tmp_path / "flaky.bin")
        with pytest.raises(s3pull.ServerError):
            client.download_file("s3://bucket/broken.bin", tmp_path / "broken.bin")
    after = samples(url)
    answered = [(r.key, r.status) for r in s3.requests]
    broken = [status for key, status in answered if key == "broken.bin"]
    assert value(after, "s3pull_retries_total", reason="throttled") == 1
    # Every 500 of broken.bin but the last was retried; the last one gave up.
    assert broken.count(500) >= 2
    assert value(after, "s3pull_retries_total", reason="server") == broken.count(500) - 1
    assert value(after, "s3pull_failures_total", error="server") == 1
    five_xx = sum(1 for _key, status in answered if 500 <= status < 600)
    assert value(after, "s3pull_requests_total", op="GET", status_class="5xx") == five_xx
    assert (
        value(
            after,
            "s3pull_download_duration_seconds_count",
            size_class="1MiB-64MiB",
            outcome="error",
        )
        == 1
    )
    assert (
        value(
            after, "s3pull_download_duration_seconds_count", size_class="1MiB-64MiB", outcome="ok"
        )
        == 1
    )
    assert value(after, "s3pull_downloads_in_flight") == 0
    assert value(after, "s3pull_temp_bytes") == 0
    assert not (tmp_path / "broken.bin").exists()


def test_clients_of_one_registry_share_its_instruments() -> None:
    # prometheus_client refuses a second registration of a name: every
    # client that records in a registry shares one recorder, and the budget
    # gauge sums their budgets.
    registry = CollectorRegistry()
    config = TransferConfig(memory_limit=32 * MiB)
    with (
        Client(subscribers=[], metrics=registry),
        Client(subscribers=[], metrics=registry, config=config),
    ):
        assert registry.get_sample_value("s3pull_memory_budget_bytes") == (
            TransferConfig.memory_limit + 32 * MiB
        )


def test_metrics_are_off_unless_asked_for() -> None:
    with Client(subscribers=[]) as client:
        assert not any(isinstance(s, Metrics) for s in client._client().events.subscribers)
    with Client(subscribers=[], config=TransferConfig(metrics=True)) as client:
        assert Metrics.for_registry() in client._client().events.subscribers


def test_metrics_config_must_be_a_bool() -> None:
    with pytest.raises(s3pull.ConfigError, match="metrics must be True or False"):
        TransferConfig(metrics="yes")  # type: ignore[arg-type]


def test_breaker_and_budget_gauges_are_read_at_scrape_time() -> None:
    from s3pull import BreakerConfig
    from s3pull.scheduling import Breakers, MemoryBudget

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    budget = MemoryBudget(8 * MiB)
    breakers = Breakers(BreakerConfig(failures=1, endpoint_failures=1))
    metrics.watch(budget, breakers)

    def gauge(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert gauge("s3pull_breaker_open", scope="object") == 0
    breakers.failed("s3://bucket/broken", s3pull.ServerError("500", source="s3://bucket/broken"))
    assert gauge("s3pull_breaker_open", scope="object") == 1
    assert gauge("s3pull_memory_budget_bytes") == 8 * MiB
    assert gauge("s3pull_memory_budget_in_use_bytes") == 0
    asyncio.run(budget.acquire(MiB))
    assert gauge("s3pull_memory_budget_in_use_bytes") == MiB
    budget.release(MiB)
    assert gauge("s3pull_memory_budget_in_use_bytes") == 0
