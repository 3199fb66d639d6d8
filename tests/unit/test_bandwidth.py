"""TokenBucket: never more than rate * window + burst, and the full rate for a steady reader."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull.planning._bandwidth import TokenBucket

RATE = 1000.0
BURST = 100.0

#: (pause before the take, bytes taken): a reader's steps, some of them by
#: readers that do not wait what they were told before taking again.
steps = st.lists(st.tuples(st.floats(0, 0.5), st.integers(1, int(BURST))), min_size=1, max_size=60)


@given(steps, st.floats(0.0, 1.0))
def test_no_window_lets_more_through_than_rate_times_window_plus_burst(
    takes: list[tuple[float, int]], start: float
) -> None:
    bucket = TokenBucket(RATE, BURST)
    now = start
    granted: list[tuple[float, int]] = []  # (when the bytes may be used, how many)
    for pause, size in takes:
        now += pause
        granted.append((now + bucket.take(size, now), size))
    for i, (first, _) in enumerate(granted):
        for last, _ in granted[i:]:
            inside = sum(size for when, size in granted if first <= when <= last)
            assert inside <= RATE * (last - first) + BURST + 1e-6


@given(st.integers(1, int(BURST)), st.integers(1, 500))
def test_a_steady_reader_gets_the_full_rate(chunk: int, reads: int) -> None:
    # It takes a chunk, waits what it is told, takes the next: the last
    # chunk is let through no later than the rate allows for what came before.
    bucket = TokenBucket(RATE, BURST)
    now = 0.0
    for _ in range(reads):
        now += bucket.take(chunk, now)
    total = chunk * reads
    assert now <= max(0.0, (total - BURST) / RATE) + 1e-9
    assert now >= (total - BURST - chunk) / RATE - 1e-9


def test_an_idle_bucket_saves_up_no_more_than_burst() -> None:
    bucket = TokenBucket(RATE, BURST)
    assert bucket.take(100, now=0.0) == 0.0
    assert bucket.take(100, now=1000.0) == 0.0  # a long idle spell: one burst back
    assert bucket.take(100, now=1000.0) == pytest.approx(0.1)


def test_takers_queue_behind_each_others_debt() -> None:
    bucket = TokenBucket(RATE, BURST)
    waits = [bucket.take(100, now=0.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_clock_read_before_another_takers_is_not_a_refill() -> None:
    # Two threads read the clock, then race for the lock: the earlier time
    # arriving second must not be mistaken for time going by.
    bucket = TokenBucket(RATE, BURST)
    bucket.take(100, now=1.0)
    assert bucket.take(100, now=0.9) == pytest.approx(0.1)


def test_threads_taking_at_once_lose_no_take() -> None:
    bucket = TokenBucket(RATE, BURST)

    def taker() -> None:
        for _ in range(1000):
            bucket.take(1, now=0.0)

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 8000 bytes taken at one instant: the last waits for all but the burst.
    assert bucket.take(0, now=0.0) == pytest.approx((8000 - BURST) / RATE)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 1)])
def test_rate_and_burst_must_be_positive(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(rate, burst)
