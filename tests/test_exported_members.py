"""``s3pull.__all__`` is exactly the public surface (httpx's test_exported_members)."""

from __future__ import annotations

import inspect
import types

import pytest

import s3pull


def test_all_is_exactly_the_public_namespace() -> None:
    # dir(), not vars(): the public names load on first use.
    public = {
        name
        for name in dir(s3pull)
        if not name.startswith("_") and not isinstance(getattr(s3pull, name), types.ModuleType)
    }
    assert set(s3pull.__all__) - {"__version__"} == public


def test_a_name_that_is_not_exported_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'download'"):
        s3pull.download  # noqa: B018


def test_all_is_sorted_without_duplicates() -> None:
    assert s3pull.__all__ == sorted(set(s3pull.__all__))


def test_every_exported_name_resolves() -> None:
    for name in s3pull.__all__:
        assert getattr(s3pull, name) is not None, name


def test_version_is_exported_and_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert "__version__" in s3pull.__all__
    assert s3pull.__version__ == version("s3pull")


def test_the_public_functions() -> None:
    # The rest of the surface is classes (clients, configs, results, errors).
    functions = {name for name in s3pull.__all__ if inspect.isfunction(getattr(s3pull, name))}
    assert functions == {
        "clean",
        "format_size",
        "iter_csv",
        "iter_lines",
        "iter_parquet_batches",
        "parse_size",
        "parse_source",
    }
