"""Which listed keys a batch takes: ``--include`` / ``--exclude`` globs. Pure code."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from .._errors import ConfigError

INCLUDE = "include"
EXCLUDE = "exclude"


class KeyFilter:
    """Include/exclude glob rules applied in order; the last rule that matches wins.

    Every key is included unless a rule says otherwise, as in ``aws s3 cp``:
    ``--exclude '*' --include '*.csv'`` takes only CSV files. Patterns are
    ``fnmatch`` globs (``*`` also matches ``/``), matched case-sensitively
    against the key relative to the listed prefix's directory.

    Example:
        >>> only_csv = KeyFilter([("exclude", "*"), ("include", "*.csv")])
        >>> only_csv.wants("2024/a.csv"), only_csv.wants("2024/a.json")
        (True, False)
    """

    def __init__(self, rules: Sequence[tuple[str, str]] = ()) -> None:
        for kind, pattern in rules:
            if kind not in (INCLUDE, EXCLUDE):
                raise ConfigError(f"a filter rule is 'include' or 'exclude', not {kind!r}")
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"a filter pattern must be a non-empty string, got {pattern!r}")
        self.rules = tuple(rules)

    def wants(self, relative_key: str) -> bool:
        included = True
        for kind, pattern in self.rules:
            if fnmatchcase(relative_key, pattern):
                included = kind == INCLUDE
        return included
