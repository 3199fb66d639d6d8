"""TransferConfig / Timeouts / RetryConfig: validation and the memory formula."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull import ConfigError, RetryConfig, Timeouts, TransferConfig

KiB = 1024
MiB = 1024 * KiB


def test_defaults() -> None:
    config = TransferConfig()
    assert config.part_size is None
    assert config.concurrency is None
    assert config.memory_limit == 64 * MiB
    assert config.read_buffer == 256 * KiB
    assert config.verify is True
    assert config.timeouts == Timeouts()
    assert config.retry == RetryConfig()


def test_default_memory_formula() -> None:
    config = TransferConfig()
    assert config.stream_cost == 768 * KiB  # 2 x 256 KiB buffer + one 256 KiB socket read
    assert config.max_streams == 85


def test_sixteen_mib_admits_21_streams() -> None:
    assert TransferConfig(memory_limit="16MiB").max_streams == 21  # type: ignore[arg-type]


@given(
    read_buffer=st.integers(min_value=4 * KiB, max_value=16 * MiB),
    extra=st.integers(min_value=0, max_value=1 << 32),
)
def test_memory_formula_properties(read_buffer: int, extra: int) -> None:
    cost = 2 * read_buffer + 256 * KiB
    config = TransferConfig(read_buffer=read_buffer, memory_limit=cost + extra)
    assert config.stream_cost == cost
    assert config.max_streams >= 1
    assert config.max_streams * cost <= config.memory_limit < (config.max_streams + 1) * cost


def test_memory_limit_of_exactly_one_stream_admits_one() -> None:
    assert TransferConfig(memory_limit=768 * KiB).max_streams == 1


@pytest.mark.parametrize("limit", [0, 1, 768 * KiB - 1, "512KiB"])
def test_memory_limit_below_one_stream_is_refused(limit: int | str) -> None:
    with pytest.raises(ConfigError, match=r"below the cost of one stream \(786432 bytes"):
        TransferConfig(memory_limit=limit)  # type: ignore[arg-type]


def test_bigger_read_buffer_raises_the_stream_cost_in_the_check() -> None:
    with pytest.raises(ConfigError, match="cost of one stream"):
        TransferConfig(read_buffer=MiB, memory_limit=2 * MiB)


def test_sizes_accept_human_strings() -> None:
    config = TransferConfig(
        part_size="8MiB",  # type: ignore[arg-type]
        memory_limit="1GB",  # type: ignore[arg-type]
        read_buffer="64KiB",  # type: ignore[arg-type]
    )
    assert config.part_size == 8 * MiB
    assert config.memory_limit == 10**9
    assert config.read_buffer == 64 * KiB


@pytest.mark.parametrize("part_size", [0, "0", "0MiB"])
def test_zero_part_size_is_refused(part_size: int | str) -> None:
    with pytest.raises(ConfigError, match="part_size must be at least 1 byte"):
        TransferConfig(part_size=part_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("part_size", [-1, "-1", "big"])
def test_bad_part_size_is_refused(part_size: int | str) -> None:
    with pytest.raises(ConfigError):
        TransferConfig(part_size=part_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [0, -1, -100, True, 2.0, "4"])
def test_bad_concurrency_is_refused(concurrency: object) -> None:
    with pytest.raises(ConfigError, match="concurrency must be >= 1"):
        TransferConfig(concurrency=concurrency)  # type: ignore[arg-type]


def test_concurrency_one_is_fine() -> None:
    assert TransferConfig(concurrency=1).concurrency == 1


@pytest.mark.parametrize("read_buffer", [0, 1, 4 * KiB - 1])
def test_tiny_read_buffer_is_refused(read_buffer: int) -> None:
    with pytest.raises(ConfigError, match="read_buffer must be at least 4 KiB"):
        TransferConfig(read_buffer=read_buffer)


@pytest.mark.parametrize("connections", [0, -1, 1.5])
def test_bad_max_connections_is_refused(connections: object) -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        TransferConfig(max_connections=connections)  # type: ignore[arg-type]


def test_config_is_frozen_and_keyword_only() -> None:
    config = TransferConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.concurrency = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransferConfig(8 * MiB)  # type: ignore[misc]


# Timeouts ------------------------------------------------------------------


def test_timeouts_one_default_with_overrides() -> None:
    timeouts = Timeouts(30, connect=5)
    assert timeouts.connect_s == 5
    assert timeouts.first_byte_s == 30
    assert timeouts.read_s == 30
    assert timeouts.total is None
    assert Timeouts(30) == Timeouts(default=30)
    assert Timeouts(10, read=2).read_s == 2
    assert Timeouts(10, first_byte=3).first_byte_s == 3


BAD_SECONDS = [0, -1, -0.5, math.nan, math.inf, -math.inf, True, "5"]


@pytest.mark.parametrize("value", BAD_SECONDS)
@pytest.mark.parametrize(
    "name", ["default", "connect", "first_byte", "read", "stall_window", "total"]
)
def test_bad_timeout_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"timeout {name} must be a positive number"):
        Timeouts(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [-1, -0.1, math.nan, "fast"])
def test_bad_stall_rate_is_refused(rate: object) -> None:
    with pytest.raises(ConfigError, match="stall_min_rate"):
        Timeouts(stall_min_rate=rate)  # type: ignore[arg-type]


def test_stall_rate_zero_disables_stall_detection() -> None:
    assert Timeouts(stall_min_rate=0).stall_min_rate == 0


def test_timeouts_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Timeouts().default = 1  # type: ignore[misc]


def test_transfer_config_takes_timeouts_and_retry() -> None:
    config = TransferConfig(timeouts=Timeouts(5), retry=RetryConfig(max_attempts=2))
    assert config.timeouts.read_s == 5
    assert config.retry.max_attempts == 2


# RetryConfig ---------------------------------------------------------------


@pytest.mark.parametrize("attempts", [0, -1, 1.5, "3"])
def test_bad_max_attempts_is_refused(attempts: object) -> None:
    with pytest.raises(ConfigError, match="max_attempts must be >= 1"):
        RetryConfig(max_attempts=attempts)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["backoff_base", "backoff_cap"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
def test_bad_backoff_is_refused(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=name):
        RetryConfig(**{name: value})  # type: ignore[arg-type]


def test_backoff_cap_below_base_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"backoff_cap \(1\) must not be below backoff_base \(2\)"
    ):
        RetryConfig(backoff_base=2, backoff_cap=1)


def test_backoff_cap_equal_to_base_is_fine() -> None:
    assert RetryConfig(backoff_base=2, backoff_cap=2).backoff_cap == 2


@pytest.mark.parametrize("budget", [-1, 0.5])
def test_bad_retry_budget_is_refused(budget: object) -> None:
    with pytest.raises(ConfigError, match="retry_budget"):
        RetryConfig(retry_budget=budget)  # type: ignore[arg-type]


def test_retry_budget_zero_is_allowed() -> None:
    assert RetryConfig(retry_budget=0).retry_budget == 0


def test_config_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        TransferConfig(concurrency=0)


@pytest.mark.parametrize("on_change", ["retry", "", None, "RESTART"])
def test_bad_on_change_is_refused(on_change: object) -> None:
    with pytest.raises(ConfigError, match="on_change must be 'fail' or 'restart'"):
        TransferConfig(on_change=on_change)  # type: ignore[arg-type]


@pytest.mark.parametrize("age", [0, -1, math.nan, math.inf, "1d"])
def test_bad_stale_age_is_refused(age: object) -> None:
    with pytest.raises(ConfigError, match="stale_age"):
        TransferConfig(stale_age=age)  # type: ignore[arg-type]


def test_stale_cleaning_and_resume_can_be_turned_off() -> None:
    config = TransferConfig(stale_age=None, resume=False, on_change="restart")
    assert (config.stale_age, config.resume, config.on_change) == (None, False, "restart")


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_attempts", True), ("max_attempts", 2.0), ("retry_budget", False), ("retry_budget", -1)],
)
def test_retry_counts_must_be_whole_numbers(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        RetryConfig(**{name: value})  # type: ignore[arg-type]


def test_max_connections_true_is_not_one() -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        TransferConfig(max_connections=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, None),
        ("0", None),
        (1000, 1000),
        ("50MiB", 50 * MiB),
        ("50MiB/s", 50 * MiB),
    ],
)
def test_max_bandwidth_accepts_sizes_and_rates(
    value: int | str | None, expected: int | None
) -> None:
    assert TransferConfig(max_bandwidth=value).max_bandwidth == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, "-1", "fast", "2MiB/h", "/s"])
def test_bad_max_bandwidth_is_refused(value: int | str) -> None:
    with pytest.raises(ConfigError, match=r"^max_bandwidth: "):
        TransferConfig(max_bandwidth=value)  # type: ignore[arg-type]
