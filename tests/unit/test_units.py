"""parse_size / format_size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull import ConfigError, format_size, parse_size
from s3pull._units import parse_duration

BINARY = {"K": 1024, "KiB": 1024, "M": 1024**2, "MiB": 1024**2, "G": 1024**3, "GiB": 1024**3}
BINARY |= {"T": 1024**4, "TiB": 1024**4}
DECIMAL = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
UNITS = {"": 1, "B": 1} | BINARY | DECIMAL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("512", 512),
        ("8MiB", 8 * 1024**2),
        ("8MB", 8_000_000),
        ("8M", 8 * 1024**2),
        ("1.5GiB", 1536 * 1024**2),
        ("  64 mib ", 64 * 1024**2),
        ("2tb", 2 * 1000**4),
        ("10B", 10),
        (4096, 4096),
    ],
)
def test_parse_size_examples(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "MiB", "-1", "-1MiB", "1 XB", "1e6", "1,000", "0x10", "1.5.5", "ten", "True"]
)
def test_parse_size_rejects_non_sizes(text: str) -> None:
    with pytest.raises(ConfigError, match="not a size"):
        parse_size(text)


def test_parse_size_rejects_negative_int() -> None:
    with pytest.raises(ConfigError, match="negative"):
        parse_size(-1)


def test_parse_size_rejects_bool() -> None:
    # True is an int to Python, but never a size a user meant to write.
    with pytest.raises(ConfigError):
        parse_size(True)


@given(st.integers(min_value=0, max_value=2**53))
def test_plain_ints_round_trip(n: int) -> None:
    assert parse_size(n) == n
    assert parse_size(str(n)) == n


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(sorted(UNITS)),
    st.sampled_from(["{n}{u}", "{n} {u}", " {n}{u} "]),
    st.booleans(),
)
def test_suffixes_round_trip(n: int, unit: str, layout: str, lower: bool) -> None:
    text = layout.format(n=n, u=unit.lower() if lower else unit)
    assert parse_size(text) == n * UNITS[unit]


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(BINARY)))
def test_binary_halves_are_exact(n: int, unit: str) -> None:
    assert parse_size(f"{n}.5{unit}") == n * BINARY[unit] + BINARY[unit] // 2


@given(st.integers(min_value=0, max_value=2**50))
def test_format_then_parse_is_close(n: int) -> None:
    text = format_size(n)
    number, unit = text.split(" ")
    factor = UNITS[unit]
    # One decimal of the unit: off by at most half a tenth of a unit.
    assert abs(parse_size(text) - n) <= 0.05 * factor + 1
    if unit != "B":
        assert 1.0 <= float(number) < 1024.05 or unit == "TiB"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (8 * 1024**2, "8.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (2048 * 1024**4, "2048.0 TiB"),
    ],
)
def test_format_size_examples(n: int, expected: str) -> None:
    assert format_size(n) == expected


def test_large_plain_int_string_is_exact() -> None:
    assert parse_size("9007199254740993") == 9007199254740993


def test_decimal_fraction_with_exact_byte_count() -> None:
    assert parse_size("1.005KB") == 1005


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1.5d", 129600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1h", "2w", "h", "1 hour"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text)
