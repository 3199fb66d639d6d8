"""Celery's ``--max-memory-per-child`` against a real worker: it acts after
the task, never during it.

The pool checks a child's memory once a task has returned (billiard reads
``ru_maxrss``, the child's peak, when psutil is not installed, else its
current RSS); a child over the limit then exits and a new one is forked. So
a task that outgrows the limit runs to its end and returns its result, and
only the next task finds a new child. That is why the limit is no guard
against one object read into memory (s3pull's budget is), only against a
child that keeps what it grew.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from s3pull.celery import make_app

from .celery_fleet import RedisServer, redis_server, workers

pytestmark = pytest.mark.timeout(180)

#: A worker app with one task that holds ``megabytes`` for ``seconds``, as a
#: naive task holding a download in memory would.
HOLDING_APP = """
import os
import time

from s3pull.celery import make_app

app = make_app()


@app.task(name="test.hold")
def hold(megabytes, seconds):
    block = b"\\1" * (megabytes << 20)  # written, so resident
    time.sleep(seconds)
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    del block
    return {"pid": os.getpid(), "rss": rss, "returned": time.time()}
"""
LIMIT_KIB = 150_000
HELD_MB = 200


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_a_child_over_its_memory_limit_is_replaced_only_after_its_task(
    redis: RedisServer, tmp_path: Path
) -> None:
    (tmp_path / "holding_app.py").write_text(HOLDING_APP)
    options = ["--max-memory-per-child", str(LIMIT_KIB)]
    env = {"PYTHONPATH": str(tmp_path)}
    with (
        workers(
            redis.url, tmp_path / "w", concurrency=1, app="holding_app", env=env, extra=options
        ) as [worker],
        closing(make_app(redis.url)) as app,
    ):
        small = app.send_task("test.hold", args=[0, 0.0]).get(timeout=60)
        assert worker.children() == [small["pid"]]  # under the limit: the child stays
        child = small["pid"]

        big = app.send_task("test.hold", args=[HELD_MB, 1.0])
        seen: list[tuple[float, list[int]]] = []  # (when the look ended, children)
        while not big.ready():
            children = worker.children()
            seen.append((time.time(), children))
            time.sleep(0.05)
        held = big.get(timeout=60)
        # It ran to its end in the same child, over the limit all along ...
        assert held["pid"] == child
        assert held["rss"] > LIMIT_KIB * 1024
        before_return = [children for when, children in seen if when < held["returned"]]
        assert before_return and all(children == [child] for children in before_return)

        # ... and only then was the child replaced.
        deadline = time.monotonic() + 30
        while child in worker.children() or not worker.children():
            assert time.monotonic() < deadline, "the child over its limit was not replaced"
            time.sleep(0.05)
        after = app.send_task("test.hold", args=[0, 0.0]).get(timeout=60)
        assert after["pid"] != child
