"""Stall detection over network-wait time (``planning._stall``), with no clock at all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull import TimeoutError, Timeouts
from s3pull.planning._stall import StallMeter

#: An 8 s window of 8 buckets of 1 s; the floor is 100 bytes/s, 800 per window.
TIMEOUTS = Timeouts(stall_window=8, stall_min_rate=100)


def test_a_steady_body_above_the_floor_is_never_stalled() -> None:
    meter = StallMeter(TIMEOUTS)
    for tenth in range(1, 1000):  # 100 s at 1000 bytes/s
        meter.add(tenth / 10, 100)


def test_a_body_below_the_floor_for_a_whole_window_is_stalled() -> None:
    meter = StallMeter(TIMEOUTS)
    meter.add(0.5, 10_000)
    for second in range(1, 8):
        meter.add(second + 0.5, 50)  # half the floor
    # The first bucket still holds the fast start: one more second drops it.
    meter.add(8.5, 50)
    with pytest.raises(TimeoutError, match=r"stalled: 400 bytes in the last 8 s \(floor 100"):
        meter.add(9.5, 50)


def test_a_fast_start_excuses_a_drip_for_one_window_at_most() -> None:
    meter = StallMeter(TIMEOUTS)
    meter.add(0.1, 1_000_000)
    with pytest.raises(TimeoutError):
        for tenth in range(2, 200):
            meter.add(tenth / 10, 1)


def test_a_silence_longer_than_the_window_is_a_stall() -> None:
    meter = StallMeter(TIMEOUTS)
    meter.add(0.5, 10_000)
    with pytest.raises(TimeoutError, match="stalled: 0 bytes"):
        meter.add(20.0, 10_000)  # the bytes after the gap do not excuse it


def test_the_first_window_is_never_judged() -> None:
    meter = StallMeter(TIMEOUTS)
    for second in range(8):
        meter.add(second + 0.5, 1)  # a drip, but not yet a whole window of it


def test_a_zero_floor_never_stalls() -> None:
    meter = StallMeter(Timeouts(stall_window=8, stall_min_rate=0))
    meter.add(0.5, 1)
    meter.add(1000.0, 1)


@given(
    rate=st.integers(min_value=101, max_value=10**6),
    seconds=st.integers(min_value=1, max_value=200),
)
def test_any_rate_above_the_floor_passes(rate: int, seconds: int) -> None:
    meter = StallMeter(TIMEOUTS)
    for step in range(1, seconds * 4 + 1):  # a read every 0.25 s
        meter.add(step / 4, -(-rate // 4))
