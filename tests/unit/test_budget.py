"""MemoryBudget: never over the limit, first come first served, no leak on cancel."""

from __future__ import annotations

import asyncio
import random

import pytest

from s3pull import ConfigError
from s3pull.scheduling._budget import MemoryBudget


async def _settle() -> None:
    """Let every ready task run until the loop is idle (no real time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_limit_must_be_positive() -> None:
    for limit in (0, -1):
        with pytest.raises(ConfigError, match="must be positive"):
            MemoryBudget(limit)


def test_reservation_larger_than_the_budget_is_refused() -> None:
    async def main() -> None:
        budget = MemoryBudget(100)
        with pytest.raises(ConfigError, match="cannot reserve 101 bytes from a budget of 100"):
            await budget.acquire(101)
        assert budget.used == 0

    asyncio.run(main())


def test_reserve_releases_on_exit_and_on_error() -> None:
    async def main() -> None:
        budget = MemoryBudget(100)
        async with budget.reserve(60):
            assert budget.used == 60
        assert budget.used == 0
        with pytest.raises(RuntimeError):
            async with budget.reserve(70):
                raise RuntimeError("part failed")
        assert budget.used == 0
        assert budget.peak == 70

    asyncio.run(main())


def test_peak_tracking() -> None:
    async def main() -> None:
        budget = MemoryBudget(10)
        await budget.acquire(3)
        await budget.acquire(4)
        budget.release(3)
        await budget.acquire(1)
        assert (budget.used, budget.peak) == (5, 7)
        await budget.acquire(5)
        assert (budget.used, budget.peak) == (10, 10)

    asyncio.run(main())


def test_many_concurrent_reservations_never_exceed_the_limit() -> None:
    limit = 1000
    rng = random.Random(42)
    sizes = [rng.randint(1, limit) for _ in range(300)]

    async def main() -> int:
        budget = MemoryBudget(limit)
        seen = 0

        async def worker(size: int, hold: int) -> None:
            nonlocal seen
            async with budget.reserve(size):
                seen = max(seen, budget.used)
                assert budget.used <= limit
                for _ in range(hold):
                    await asyncio.sleep(0)
                    assert budget.used <= limit

        await asyncio.gather(*(worker(size, rng.randint(0, 5)) for size in sizes))
        assert budget.used == 0
        assert not budget._waiters
        assert budget.peak <= limit
        return seen

    seen = asyncio.run(main())
    assert seen > max(sizes)  # reservations really did overlap


def test_waiters_are_served_in_order_so_a_large_one_is_not_starved() -> None:
    async def main() -> list[str]:
        budget = MemoryBudget(10)
        order: list[str] = []
        await budget.acquire(8)

        async def take(name: str, size: int) -> None:
            await budget.acquire(size)
            order.append(name)

        large = asyncio.create_task(take("large", 10))
        await _settle()
        small = asyncio.create_task(take("small", 1))  # would fit now, but must queue
        await _settle()
        assert order == []
        assert budget.used == 8

        budget.release(8)
        await _settle()
        assert order == ["large"]
        assert budget.used == 10

        budget.release(10)
        await _settle()
        assert order == ["large", "small"]
        await asyncio.gather(large, small)
        return order

    assert asyncio.run(main()) == ["large", "small"]


def test_a_stream_of_small_reservations_cannot_starve_a_large_one() -> None:
    async def main() -> None:
        budget = MemoryBudget(10)
        granted: list[str] = []

        async def small(index: int) -> None:
            async with budget.reserve(3):
                granted.append(f"small{index}")
                await asyncio.sleep(0)

        async def large() -> None:
            async with budget.reserve(10):
                granted.append("large")

        tasks = [asyncio.create_task(small(i)) for i in range(3)]
        tasks.append(asyncio.create_task(large()))
        tasks += [asyncio.create_task(small(i)) for i in range(3, 20)]
        await asyncio.gather(*tasks)
        assert granted.index("large") == 3
        assert budget.used == 0

    asyncio.run(main())


def test_cancelled_waiter_leaves_the_queue_and_wakes_the_next() -> None:
    async def main() -> None:
        budget = MemoryBudget(10)
        await budget.acquire(8)
        large = asyncio.create_task(budget.acquire(10))
        small = asyncio.create_task(budget.acquire(2))
        await _settle()
        assert not small.done()  # queued behind the large waiter

        large.cancel()
        await _settle()
        assert large.cancelled()
        assert small.done()  # the head left, so the small one fits now
        assert budget.used == 10
        assert not budget._waiters

        budget.release(2)
        budget.release(8)
        assert budget.used == 0

    asyncio.run(main())


def test_waiter_cancelled_as_it_is_granted_gives_the_bytes_back() -> None:
    async def main() -> None:
        budget = MemoryBudget(10)
        await budget.acquire(10)
        waiter = asyncio.create_task(budget.acquire(6))
        await _settle()

        budget.release(10)  # grants the waiter's 6 bytes...
        assert budget.used == 6
        waiter.cancel()  # ...but it is cancelled before it runs again
        await _settle()
        assert waiter.cancelled()
        assert budget.used == 0
        assert not budget._waiters

    asyncio.run(main())


def test_cancelled_waiter_does_not_leak_under_load() -> None:
    async def main() -> None:
        budget = MemoryBudget(100)
        rng = random.Random(3)

        async def worker(size: int) -> None:
            async with budget.reserve(size):
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(worker(rng.randint(1, 100))) for _ in range(200)]
        await asyncio.sleep(0)
        for task in rng.sample(tasks, 80):
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert any(isinstance(result, asyncio.CancelledError) for result in results)
        assert budget.used == 0
        assert not budget._waiters
        assert budget.peak <= 100

    asyncio.run(main())


def test_wait_for_timeout_on_a_full_budget_does_not_leak() -> None:
    async def main() -> None:
        budget = MemoryBudget(10)
        await budget.acquire(10)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(budget.acquire(5), timeout=0.01)
        budget.release(10)
        assert budget.used == 0
        await asyncio.wait_for(budget.acquire(10), timeout=1)

    asyncio.run(main())


async def test_a_negative_reservation_is_refused() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(ValueError, match="negative"):
        await budget.acquire(-1)
    assert budget.used == 0
