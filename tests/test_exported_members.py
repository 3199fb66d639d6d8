"""``s3pull.__all__`` is exactly the public surface (httpx's test_exported_members)."""

from __future__ import annotations

import types

import s3pull


def test_all_is_exactly_the_public_namespace() -> None:
    public = {
        name
        for name, value in vars(s3pull).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(s3pull.__all__) - {"__version__"} == public


def test_all_is_sorted_without_duplicates() -> None:
    assert s3pull.__all__ == sorted(set(s3pull.__all__))


def test_every_exported_name_resolves() -> None:
    for name in s3pull.__all__:
        assert getattr(s3pull, name) is not None, name


def test_version_is_exported_and_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert "__version__" in s3pull.__all__
    assert s3pull.__version__ == version("s3pull")
