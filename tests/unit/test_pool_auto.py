"""``processes="auto"``: which batches go to worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from s3pull._source import S3Source
from s3pull.executors import _pool
from s3pull.scheduling._batch import BatchItem
from s3pull.transport import ListedObject


def item(i: int, size: int | None) -> BatchItem:
    listed = ListedObject(f"k/{i}", size) if size is not None else None
    return BatchItem(S3Source("b", f"k/{i}"), Path(f"/d/{i}"), listed=listed)


async def stream(items: list[BatchItem]) -> AsyncIterator[BatchItem]:
    for one in items:
        yield one


def decide(items: list[BatchItem]) -> tuple[int, bool]:
    head, large, error = asyncio.run(_pool._peek(stream(items)))
    assert error is None
    return len(head), large


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "cores", lambda: 2)


MIN = _pool.AUTO_MIN_OBJECTS


def test_many_small_listed_objects_go_to_processes() -> None:
    assert decide([item(i, 64 << 10) for i in range(5000)]) == (MIN, True)
    assert decide([item(i, 1 << 20) for i in range(MIN)]) == (MIN, True)


def test_a_short_batch_stays_in_process_whole() -> None:
    assert decide([item(i, 1) for i in range(MIN - 1)]) == (MIN - 1, False)


def test_one_full_listing_page_of_small_objects_is_enough() -> None:
    # The parent downloads from the first item on while its workers start, so
    # their start-up costs no wall time; deciding needs no second page.
    assert MIN == 1000
    assert decide([item(i, 16 << 10) for i in range(1000)]) == (1000, True)


def test_large_objects_stay_in_process() -> None:
    assert decide([item(i, (1 << 20) + 1) for i in range(MIN)]) == (MIN, False)


def test_objects_of_unknown_size_stay_in_process() -> None:
    items = [item(i, 1) for i in range(10)] + [item(10, None)]
    assert decide(items + [item(i, 1) for i in range(11, MIN + 1000)]) == (11, False)


def test_one_core_stays_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "cores", lambda: 1)
    assert decide([item(i, 1) for i in range(MIN + 1000)]) == (MIN, False)


def test_a_listing_that_fails_while_looked_at_gives_its_items_then_its_error() -> None:
    # What was listed is still downloaded (in process), then the batch ends
    # with the listing's error, as it would without the look ahead.
    async def failing() -> AsyncIterator[BatchItem]:
        for i in range(MIN - 1):
            yield item(i, 1)
        raise RuntimeError("page 2")

    async def run() -> tuple[list[str], BaseException | None]:
        head, large, error = await _pool._peek(failing())
        assert not large
        seen: list[str] = []
        chained = _pool._chain(head, failing(), error)
        try:
            while True:
                seen.append((await anext(chained)).destination.name)
        except RuntimeError as raised:
            return seen, raised
        except StopAsyncIteration:
            return seen, None

    seen, raised = asyncio.run(run())
    assert len(seen) == MIN - 1 and str(raised) == "page 2"
