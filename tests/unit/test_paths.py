"""safe_name / destination_file: a key never writes outside the destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3pull import UnsafePathError
from s3pull.planning._paths import NAME_MAX, destination_file, safe_name

SOURCE = "s3://bucket/some/key"


@pytest.mark.parametrize(
    "name",
    ["report.pdf", "a", "...", "..a", ".hidden", "with space", "ünïcode €", "a" * NAME_MAX, "-x"],
)
def test_safe_names(name: str) -> None:
    assert safe_name(name, source=SOURCE) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "cannot use"),
        (".", "cannot use"),
        ("..", "cannot use"),
        ("a/b", "path separators"),
        ("../etc", "path separators"),
        ("/abs", "path separators"),
        ("a\\b", "path separators"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("a\x1fb", "control characters"),
        ("a\x7fb", "control characters"),
        ("a" * (NAME_MAX + 1), "longer than 255 bytes"),
        ("€" * 86, "longer than 255 bytes"),  # 258 bytes in 86 characters
    ],
)
def test_unsafe_names(name: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match=reason) as info:
        safe_name(name, source=SOURCE)
    assert info.value.source == SOURCE
    assert str(info.value).startswith(f"{SOURCE}: ")


def test_length_limit_counts_bytes_not_characters() -> None:
    assert safe_name("€" * 85, source=SOURCE) == "€" * 85  # exactly 255 bytes
    with pytest.raises(UnsafePathError):
        safe_name("€" * 85 + "a", source=SOURCE)


def test_destination_directory_gets_the_source_name() -> None:
    assert destination_file("a.bin", Path("out"), is_dir=True, source=SOURCE) == Path("out/a.bin")


def test_destination_file_is_used_as_is() -> None:
    # The key's name is irrelevant (even an unsafe one) when the caller named the file.
    assert destination_file("..", Path("out/x.bin"), is_dir=False, source=SOURCE) == Path(
        "out/x.bin"
    )


@pytest.mark.parametrize("name", ["..", "", "../../etc/passwd", "a/b"])
def test_destination_directory_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafePathError):
        destination_file(name, Path("out"), is_dir=True, source=SOURCE)
