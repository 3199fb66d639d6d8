"""Planning ordered-stream windows against the memory budget (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from s3pull.planning._windows import MIN_STREAM_PART, fit_window, holdable, stream_part_size

KiB, MiB = 1024, 1024 * 1024
COST = 768 * KiB


def test_streams_may_hold_all_but_a_reserve_for_gets() -> None:
    assert holdable(64 * MiB, COST) == 64 * MiB - 8 * COST  # eight GETs kept
    assert holdable(8 * MiB, COST) == 6 * MiB  # a quarter of a small budget
    assert holdable(2 * MiB, COST) == 2 * MiB - COST  # never less than one GET


@given(limit=st.integers(COST, 1 << 40), cost=st.integers(1, 64 * MiB))
def test_the_reserve_always_has_room_for_one_get(limit: int, cost: int) -> None:
    if limit >= cost:
        assert 0 <= holdable(limit, cost) <= limit - cost


def test_a_window_that_fits_is_granted_as_asked() -> None:
    assert fit_window(58 * MiB, wanted=32 * MiB) == (32 * MiB, 4 * MiB)
    assert fit_window(58 * MiB, wanted=6 * MiB, part_size=2 * MiB) == (6 * MiB, 2 * MiB)


def test_a_window_shrinks_to_whole_parts_of_what_is_free() -> None:
    # 26 MiB left: parts re-sized for that window, not kept at 4 MiB.
    assert fit_window(26 * MiB, wanted=32 * MiB) == (24 * MiB, 3 * MiB)
    assert fit_window(2 * MiB + 5, wanted=32 * MiB) == (2 * MiB, MIN_STREAM_PART)
    assert fit_window(5 * MiB, wanted=8 * MiB, part_size=2 * MiB) == (4 * MiB, 2 * MiB)


def test_below_one_part_the_stream_waits() -> None:
    assert fit_window(MiB - 1, wanted=32 * MiB) is None
    assert fit_window(3 * MiB, wanted=8 * MiB, part_size=4 * MiB) is None
    assert fit_window(3 * MiB, wanted=8 * MiB, extra=2 * MiB + 1) is None
    assert fit_window(0, wanted=MiB) is None


@given(
    free=st.integers(-MiB, 1 << 34),
    wanted=st.integers(MiB, 1 << 33),
    part=st.one_of(st.none(), st.integers(64 * KiB, 64 * MiB)),
    extra=st.sampled_from([0, 2 * MiB]),
)
def test_a_planned_window_fits_and_is_planned_again_from_what_it_holds(
    free: int, wanted: int, part: int | None, extra: int
) -> None:
    plan = fit_window(free, wanted=wanted, part_size=part, extra=extra)
    if plan is None:
        return
    window, part_size = plan
    assert part_size == (part or stream_part_size(window))
    assert part_size <= window <= min(wanted, free - extra)
    assert window % part_size == 0
    # The client plans again from the bytes it was granted: the same plan.
    assert fit_window(window + extra, wanted=wanted, part_size=part, extra=extra) == plan
