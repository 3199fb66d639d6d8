"""BatchItems: where each item of a batch lands, and which are refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from s3pull import ConfigError, UnsafePathError
from s3pull._source import HttpSource, S3Source
from s3pull.scheduling._batch import BatchItems


@dataclass
class Record:  # the shape of an InventoryRecord
    bucket: str
    key: str
    size: int | None
    etag: str | None = None
    last_modified: datetime | None = None


def test_sources_land_at_their_key_and_urls_at_their_name(tmp_path: Path) -> None:
    maker = BatchItems(tmp_path)
    s3 = maker.from_item("s3://bkt/a/b.txt")
    http = maker.from_item("https://host.example/x/y/report.pdf?X-Amz-Signature=s")
    assert s3 is not None and s3.destination == tmp_path / "a/b.txt"
    assert http is not None and http.destination == tmp_path / "report.pdf"
    assert isinstance(http.source, HttpSource)


def test_pairs_keep_their_destination_or_name_the_file_in_a_directory(tmp_path: Path) -> None:
    maker = BatchItems(None)
    to_file = maker.from_item(("s3://bkt/k/one.bin", tmp_path / "renamed.bin"))
    into_dir = maker.from_item(("s3://bkt/k/two.bin", tmp_path))
    assert to_file is not None and to_file.destination == tmp_path / "renamed.bin"
    assert into_dir is not None and into_dir.destination == tmp_path / "two.bin"


def test_records_carry_size_and_a_quoted_etag(tmp_path: Path) -> None:
    maker = BatchItems(tmp_path)
    item = maker.from_item(Record("bkt", "d/k", 12, "abc"))
    assert item is not None and item.listed is not None
    assert (item.listed.size, item.listed.etag) == (12, '"abc"')
    assert isinstance(item.source, S3Source) and item.source.key == "d/k"
    marker = maker.from_item(Record("bkt", "gone", None))  # no size: ask the store
    assert marker is not None and marker.listed is None


def test_unsafe_and_clashing_keys_are_refused_not_raised(tmp_path: Path) -> None:
    maker = BatchItems(tmp_path)
    escape = maker.from_item("s3://bkt/../../etc/passwd")
    first = maker.from_item("s3://bkt/Same.txt")
    clash = maker.from_item("s3://bkt/same.txt")
    twice = maker.from_item(("s3://bkt/x", tmp_path / "f"))
    again = maker.from_item(("s3://bkt/y", tmp_path / "f"))
    assert escape is not None and isinstance(escape.refused, UnsafePathError)
    assert first is not None and first.refused is None
    assert clash is not None and isinstance(clash.refused, UnsafePathError)
    assert twice is not None and twice.refused is None
    assert again is not None and isinstance(again.refused, UnsafePathError)


def test_a_prefix_base_is_not_part_of_the_path(tmp_path: Path) -> None:
    maker = BatchItems(tmp_path, base="logs/")
    assert maker.keyed(S3Source("bkt", "logs/")) is None  # the directory itself
    marker = maker.keyed(S3Source("bkt", "logs/2024/"))
    assert marker is not None and marker.directory and marker.destination == tmp_path / "2024"


def test_keyed_items_need_a_directory() -> None:
    with pytest.raises(ConfigError, match="no destination"):
        BatchItems(None).from_item("s3://bkt/k")
