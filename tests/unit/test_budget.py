"""MemoryBudget: never over the limit, first come first served, no leak on cancel."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# Holdings: windows held while a stream is open ------------------------------------------


def _upto(wanted: int, least: int = 1) -> Callable[[int], int | None]:
    """A fit that takes up to ``wanted`` bytes, and at least ``least``."""
    return lambda free: min(wanted, free) if free >= least else None


def test_a_holding_shrinks_to_what_is_free_then_waits_its_turn() -> None:
    async def main() -> None:
        budget = MemoryBudget(100, holdable=80)
        assert await budget.hold(_upto(60)) == 60
        assert await budget.hold(_upto(60)) == 20  # what is left of the 80
        third = asyncio.create_task(budget.hold(_upto(60, least=10)))
        fourth = asyncio.create_task(budget.hold(_upto(5)))  # would fit nowhere either
        await _settle()
        assert not third.done() and not fourth.done()
        assert (budget.used, budget.held) == (80, 80)

        budget.unhold(20)
        await _settle()
        assert third.result() == 20 and fourth.done() is False  # in turn
        budget.unhold(60)
        await _settle()
        assert fourth.result() == 5
        budget.unhold(20)
        budget.unhold(5)
        assert (budget.used, budget.held) == (0, 0)

    asyncio.run(main())


def test_a_waiting_holding_never_holds_up_reservations() -> None:
    # The deadlock it prevents: a second window queued ahead of the GETs
    # that the first window's stream needs in order to finish.
    async def main() -> None:
        budget = MemoryBudget(100, holdable=80)
        await budget.hold(_upto(70))
        waiting = asyncio.create_task(budget.hold(_upto(70, least=70)))
        await _settle()
        for _ in range(3):  # the first stream's GETs still go through
            async with budget.reserve(30):
                assert budget.used == 100
        assert not waiting.done()
        budget.unhold(70)
        assert await waiting == 70
        budget.unhold(70)

    asyncio.run(main())


def test_a_holding_that_could_never_fit_is_refused_at_once() -> None:
    async def main() -> None:
        budget = MemoryBudget(100, holdable=80)
        with pytest.raises(ConfigError, match="80 bytes of memory_limit"):
            await budget.hold(_upto(90, least=81))
        assert (budget.used, budget.held) == (0, 0)

    asyncio.run(main())


def test_a_budget_lending_bytes_behaves_as_a_smaller_one_until_they_come_back() -> None:
    # The parent of a local pool lends its workers their shares.
    async def main() -> None:
        budget = MemoryBudget(100, holdable=80)
        lending = budget.lend(60, holdable=25)
        assert lending is not None
        assert (budget.used, budget.holdable) == (60, 25)
        with pytest.raises(ConfigError, match="25 bytes of memory_limit"):
            await budget.hold(_upto(30, least=30))
        assert await budget.hold(_upto(30)) == 25
        budget.unhold(25)
        second = asyncio.create_task(budget.acquire(41))
        await _settle()
        assert not second.done()  # 60 lent + 41 > 100
        lending.give_back()
        await second
        assert (budget.used, budget.holdable) == (41, 80)
        lending.give_back()  # once only
        assert (budget.used, budget.holdable) == (41, 80)
        budget.release(41)

    asyncio.run(main())


def test_only_an_idle_budget_lends() -> None:
    # A lending queued behind a holding would hold up the GETs that holding
    # needs before it gives anything back.
    async def main() -> None:
        budget = MemoryBudget(100, holdable=80)
        async with budget.reserve(1):
            assert budget.lend(10, holdable=10) is None
        held = await budget.hold(_upto(20))
        assert budget.lend(10, holdable=10) is None
        budget.unhold(held)
        with budget.planned_share(50):
            assert budget.planned == 50
            assert budget.lend(10, holdable=10) is None
        assert budget.planned == 0
        lending = budget.lend(10, holdable=10)
        assert lending is not None
        lending.give_back()
        assert (budget.used, budget.held, budget.holdable) == (0, 0, 80)

    asyncio.run(main())


def test_a_cancelled_holding_leaves_nothing_behind() -> None:
    async def main() -> None:
        budget = MemoryBudget(100, holdable=80)
        await budget.hold(_upto(80))
        waiting = asyncio.create_task(budget.hold(_upto(50, least=50)))
        after = asyncio.create_task(budget.hold(_upto(10)))
        await _settle()
        waiting.cancel()
        await _settle()
        assert waiting.cancelled() and not after.done()
        budget.unhold(80)
        assert await after == 10
        budget.unhold(10)
        assert (budget.used, budget.held) == (0, 0)
        assert not budget._holders

    asyncio.run(main())


@settings(max_examples=60)
@given(
    windows=st.lists(st.integers(1, 60), min_size=1, max_size=12),
    gets=st.lists(st.integers(1, 6), min_size=1, max_size=12),
)
def test_streams_and_downloads_always_finish_within_the_limit(
    windows: list[int], gets: list[int]
) -> None:
    # Streams hold a window (shrunk down to 1 byte, or waiting for one) and
    # need GETs of 10 one after another; downloads need GETs only. However
    # many there are, all finish, and the budget is never exceeded.
    cost, limit = 10, 100

    async def stream(wanted: int, needs: int) -> None:
        held = await budget.hold(_upto(wanted))
        for _ in range(needs):
            async with budget.reserve(cost):
                assert budget.used <= limit
                await asyncio.sleep(0)
        budget.unhold(held)

    async def download(needs: int) -> None:
        for _ in range(needs):
            async with budget.reserve(cost):
                await asyncio.sleep(0)

    async def main() -> None:
        tasks = [stream(w, n) for w, n in zip(windows, gets * 2, strict=False)]
        tasks += [download(n) for n in gets]
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        assert (budget.used, budget.held) == (0, 0)
        assert budget.peak <= limit

    budget = MemoryBudget(limit, holdable=limit - cost)
    asyncio.run(main())
