"""s3pull.celery's pure parts: routing by size, the worker preset, budgets,
what travels with the work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from s3pull import ConfigError, TransferConfig
from s3pull._events import Events
from s3pull.celery import (
    LARGE_QUEUE,
    QUEUE,
    child_budget,
    queue_for,
    route_by_size,
    worker_settings,
)
from s3pull.celery._executor import work_arguments
from s3pull.executors import PoolSetup, ShardOptions, config_from_json

MiB = 1 << 20


def shard(*sizes: int | None) -> dict[str, object]:
    items = [{"id": i, "path": f"/d/{i}", "size": size} for i, size in enumerate(sizes)]
    return {"items": [{k: v for k, v in item.items() if v is not None} for item in items]}


def test_shards_are_routed_by_their_largest_known_object() -> None:
    route = route_by_size("100MiB")
    assert route("s3pull.download_shard", (), {"shard": shard(1, 2)}, {}) == {"queue": QUEUE}
    large = {"queue": LARGE_QUEUE}
    assert route("s3pull.download_shard", (), {"shard": shard(1, 100 * MiB)}, {}) == large
    assert route("s3pull.download_shard", (shard(200 * MiB),), None, {}) == large
    # Unknown sizes (a key list): the small queue; no HEAD is made to find out.
    assert route("s3pull.download_shard", (), {"shard": shard(None)}, {}) == {"queue": QUEUE}
    assert route("s3pull.download", (), {"size": 1 << 30}, {}) == large
    assert route("s3pull.fanout", (), {}, {}) == {"queue": QUEUE}
    # Documents: by the size the submitter gives (a 584 MB PDF is large work).
    assert route("s3pull.pdf_split", (), {"size": 584 * 10**6}, {}) == large
    assert route("s3pull.pdf_text", (), {"size": 10**6}, {}) == {"queue": QUEUE}
    assert route("someone.else", (), {}, {}) is None
    assert queue_for(100 * MiB, 100 * MiB) == LARGE_QUEUE


def test_the_preset_acknowledges_late_and_prefetches_one() -> None:
    settings = worker_settings(max_deliveries=5)
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["s3pull_max_deliveries"] == 5
    assert settings["accept_content"] == ["json"]


def test_a_child_budget_is_its_share_of_the_worker_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3PULL_MEMORY_LIMIT", "1GiB")
    assert child_budget(4) == 256 * MiB - 64 * MiB
    assert child_budget(64) == 16 * MiB  # never below the smallest useful budget
    monkeypatch.delenv("S3PULL_MEMORY_LIMIT")
    assert child_budget(4) == 64 * MiB


def setup(**config: object) -> PoolSetup:
    endpoint = {
        "endpoint_url": "http://s3.local:9000",
        "region": "eu-west-1",
        "addressing_style": "path",
        "profile": "prod",
        "sign": True,
    }
    return PoolSetup(
        config=TransferConfig(part_size="8MiB", **config),  # type: ignore[arg-type]
        endpoint=endpoint,
        events=Events([]),
        options=ShardOptions(skip_existing=True),
    )


def test_endpoint_and_options_travel_and_credentials_do_not() -> None:
    arguments = work_arguments(setup())
    assert arguments["endpoint"] == {
        "endpoint_url": "http://s3.local:9000",
        "region": "eu-west-1",
        "addressing_style": "path",
        "sign": True,
    }
    assert config_from_json(arguments["config"]).part_size == 8 * MiB
    assert arguments["options"]["skip_existing"] is True
    with pytest.raises(ConfigError, match="SSE-C"):
        work_arguments(setup(sse_c_key=b"k" * 32))


@pytest.mark.parametrize("module", ["s3pull", "s3pull.celery"])
def test_importing_connects_to_nothing_and_loads_no_celery(module: str) -> None:
    # The default app (and Celery itself) is built at first use of s3pull.celery.app.
    code = f"import sys, {module}; print('celery' in sys.modules, 'redis' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False", "False"]
