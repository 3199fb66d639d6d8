"""--include / --exclude: in order, the last match wins."""

from __future__ import annotations

import pytest

from s3pull import ConfigError
from s3pull.planning._filters import KeyFilter


@pytest.mark.parametrize(
    ("rules", "key", "wanted"),
    [
        ([], "anything", True),
        ([("exclude", "*.tmp")], "a.tmp", False),
        ([("exclude", "*.tmp")], "dir/a.tmp", False),  # * crosses "/"
        ([("exclude", "*"), ("include", "*.csv")], "x/y.csv", True),
        ([("exclude", "*"), ("include", "*.csv")], "x/y.CSV", False),  # case-sensitive
        ([("include", "*.csv"), ("exclude", "*")], "y.csv", False),  # the last match wins
        ([("exclude", "logs/2024-0[1-3]*")], "logs/2024-02-01.gz", False),
        ([("exclude", "logs/2024-0[1-3]*")], "logs/2024-04-01.gz", True),
    ],
)
def test_rules(rules: list[tuple[str, str]], key: str, wanted: bool) -> None:
    assert KeyFilter(rules).wants(key) is wanted


@pytest.mark.parametrize("rule", [("keep", "*"), ("include", ""), ("exclude", None)])
def test_bad_rules_are_refused(rule: tuple[str, object]) -> None:
    with pytest.raises(ConfigError):
        KeyFilter([rule])  # type: ignore[list-item]
