"""Range planning: plan_parts, choose_part_size, choose_concurrency."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from s3pull.planning._ranges import (
    DEFAULT_CONCURRENCY,
    Part,
    choose_concurrency,
    choose_part_size,
    plan_parts,
)

MiB = 1 << 20
GiB = 1 << 30
MAX_PARTS = 10_000


def _parts_needed(size: int, part_size: int) -> int:
    return -(-size // part_size)


# plan_parts ------------------------------------------------------------------


@given(
    size=st.integers(min_value=0, max_value=10**13),
    part_size=st.integers(min_value=1, max_value=2**34),
    data=st.data(),
)
def test_parts_cover_the_range_exactly_once_in_order(
    size: int, part_size: int, data: st.DataObject
) -> None:
    assume(size // part_size < 20_000)
    start = data.draw(st.integers(min_value=max(0, size - 20_000 * part_size), max_value=size))
    parts = plan_parts(size, part_size, start=start)

    assert [part.index for part in parts] == list(range(len(parts)))
    position = start
    for part in parts:
        assert part.first == position  # no gap, no overlap
        assert 1 <= part.length <= part_size
        assert part.length == part.last - part.first + 1
        position = part.last + 1
    assert position == max(size, start)  # ends exactly at the last byte
    assert sum(part.length for part in parts) == size - start
    assert len(parts) == _parts_needed(size - start, part_size)
    # Only the last part may be short.
    assert all(part.length == part_size for part in parts[:-1])


@given(part_size=st.integers(min_value=1, max_value=2**34))
def test_empty_object_has_no_parts(part_size: int) -> None:
    assert plan_parts(0, part_size) == []


@given(part_size=st.integers(min_value=1, max_value=2**34))
def test_one_byte_object_is_one_part(part_size: int) -> None:
    assert plan_parts(1, part_size) == [Part(0, 0, 0)]


def test_plan_parts_example() -> None:
    assert [(p.index, p.first, p.last) for p in plan_parts(10, 4)] == [
        (0, 0, 3),
        (1, 4, 7),
        (2, 8, 9),
    ]
    assert [(p.first, p.last) for p in plan_parts(10, 4, start=6)] == [(6, 9)]
    assert plan_parts(10, 4, start=10) == []


@pytest.mark.parametrize("part_size", [0, -1])
def test_part_size_must_be_positive(part_size: int) -> None:
    with pytest.raises(ValueError, match="part_size must be positive"):
        plan_parts(10, part_size)


@pytest.mark.parametrize("start", [-1, 11])
def test_start_must_be_within_the_object(start: int) -> None:
    with pytest.raises(ValueError, match="start must be within the object"):
        plan_parts(10, 4, start=start)


# choose_part_size --------------------------------------------------------------


@given(
    size=st.integers(min_value=0, max_value=10**14),
    requested=st.integers(min_value=1, max_value=2**34),
)
def test_requested_part_size_is_a_floor(size: int, requested: int) -> None:
    part_size = choose_part_size(size, requested)
    assert part_size >= requested
    assert _parts_needed(size, part_size) <= MAX_PARTS
    if _parts_needed(size, requested) <= MAX_PARTS:
        assert part_size == requested  # honoured as is when S3's limit allows
    else:
        # Grown in whole MiB, and by no more than needed.
        assert part_size % MiB == 0
        assert part_size == MiB or _parts_needed(size, part_size - MiB) > MAX_PARTS


@given(size=st.integers(min_value=0, max_value=10**14))
def test_default_part_size(size: int) -> None:
    part_size = choose_part_size(size)
    assert part_size == choose_part_size(size, None) == choose_part_size(size, 0)
    assert part_size % MiB == 0
    assert part_size >= 8 * MiB
    assert _parts_needed(size, part_size) <= MAX_PARTS
    if size <= 16 * MiB * MAX_PARTS:
        assert 8 * MiB <= part_size <= 16 * MiB
        if size > DEFAULT_CONCURRENCY * 8 * MiB and part_size < 16 * MiB:
            # The smallest whole MiB that splits the object over the default
            # streams. Rounding up to a MiB can leave one stream without a
            # part (144 MiB + 1 byte -> 10 MiB parts -> 15 parts), never two.
            assert (part_size - MiB) * DEFAULT_CONCURRENCY < size <= part_size * DEFAULT_CONCURRENCY
            assert _parts_needed(size, part_size) >= DEFAULT_CONCURRENCY - 1
    else:
        assert _parts_needed(size, part_size - MiB) > MAX_PARTS


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, 8 * MiB),
        (1, 8 * MiB),
        (64 * MiB, 8 * MiB),
        (128 * MiB, 8 * MiB),
        (128 * MiB + 1, 9 * MiB),
        (200 * MiB, 13 * MiB),
        (GiB, 16 * MiB),
        (100 * GiB, 16 * MiB),
        (16 * MiB * MAX_PARTS, 16 * MiB),
        (16 * MiB * MAX_PARTS + 1, 17 * MiB),
        (5 * 1000**4, 477 * MiB),  # S3's former 5 TB object limit
    ],
)
def test_default_part_size_examples(size: int, expected: int) -> None:
    assert choose_part_size(size) == expected


# choose_concurrency -------------------------------------------------------------


@given(
    parts=st.integers(min_value=0, max_value=10**6),
    requested=st.none() | st.integers(min_value=1, max_value=10_000),
    max_streams=st.integers(min_value=1, max_value=100_000),
)
def test_concurrency_bounds(parts: int, requested: int | None, max_streams: int) -> None:
    result = choose_concurrency(parts, requested, max_streams)
    wanted = requested if requested is not None else DEFAULT_CONCURRENCY
    assert 1 <= result <= max_streams
    assert result <= wanted
    assert result <= max(parts, 1)
    # ...and it uses everything those limits allow.
    assert result == max(1, min(parts, wanted, max_streams))


def test_concurrency_examples() -> None:
    assert choose_concurrency(parts=3, requested=None, max_streams=85) == 3
    assert choose_concurrency(parts=100, requested=None, max_streams=85) == DEFAULT_CONCURRENCY
    assert choose_concurrency(parts=100, requested=64, max_streams=21) == 21
    assert choose_concurrency(parts=0, requested=8, max_streams=85) == 1
