"""The consumers are pure parsers: bytes or a local file in, items out, no client."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

import s3pull
from s3pull import IntegrityError, ObjectInfo, S3Source
from s3pull.consumers import (
    InventoryFile,
    InventoryManifest,
    csv_format,
    csv_records,
    line_format,
    parquet_reader,
    parquet_records,
)
from s3pull.consumers._batching import BATCH_CHARS, BATCH_ITEMS

INFO = ObjectInfo(source="s3://b/k", size=0)


def test_lines_of_concatenated_gzip_members_named_gz() -> None:
    body = gzip.compress(b"one\r\ntwo\n") + gzip.compress(b"three")
    fmt = line_format(S3Source("b", "a.log.gz"))
    assert list(fmt.parse(io.BytesIO(body), INFO)) == ["one", "two", "three"]


def test_gzip_is_found_by_content_encoding_when_the_name_says_nothing() -> None:
    fmt = line_format(S3Source("b", "a.log"))
    gzipped = ObjectInfo(source="s3://b/a.log", size=0, content_encoding="gzip")
    assert list(fmt.parse(io.BytesIO(gzip.compress(b"x\ny\n")), gzipped)) == ["x", "y"]
    assert list(fmt.parse(io.BytesIO(b"x\ny\n"), INFO)) == ["x", "y"]


def test_csv_rows_as_dicts_with_format_parameters() -> None:
    fmt = csv_format(S3Source("b", "t.tsv"), header=True, delimiter="\t")
    rows = list(fmt.parse(io.BytesIO(b"a\tb\n1\t2\n"), INFO))
    assert rows == [{"a": "1", "b": "2"}]


def test_batches_are_cut_by_items_and_by_characters() -> None:
    fmt = line_format(S3Source("b", "a.log"))
    short = "".join(f"{i}\n" for i in range(BATCH_ITEMS + 1)).encode()
    assert [len(b) for b in fmt.batches(io.BytesIO(short), INFO)] == [BATCH_ITEMS, 1]
    long = ("x" * (BATCH_CHARS // 2) + "\n").encode() * 3
    assert [len(b) for b in fmt.batches(io.BytesIO(long), INFO)] == [2, 1]


def test_bad_options_are_refused_when_the_parser_is_made() -> None:
    with pytest.raises(s3pull.ConfigError, match="zstd"):
        line_format(S3Source("b", "a.csv.zst"))
    with pytest.raises(s3pull.ConfigError, match="compression must be"):
        csv_format(S3Source("b", "a.csv"), compression="bz2")  # type: ignore[arg-type]
    with pytest.raises(s3pull.ConfigError, match="batch_size"):
        parquet_reader(batch_size=0)


def test_the_public_functions_want_a_client() -> None:
    with pytest.raises(TypeError, match="expected an s3pull Client or AsyncClient, got str"):
        s3pull.iter_lines("s3://b/k", "s3://b/k")  # type: ignore[arg-type]


def _manifest(fmt: str, schema: list[str]) -> InventoryManifest:
    return InventoryManifest("src", "inv", fmt, schema, [])


def test_csv_inventory_records_decode_keys_and_check_the_md5_at_the_end() -> None:
    body = gzip.compress(b'"src","a%2Fb+c.txt","5"\n"src","d","7"\n')
    manifest = _manifest("CSV", ["Bucket", "Key", "Size"])
    good = InventoryFile("data/1.csv.gz", len(body), hashlib.md5(body).hexdigest())
    parse = csv_records(manifest, good, None, verify_md5=True)
    records = [r for batch in parse(io.BytesIO(body), INFO) for r in batch]
    assert [(r.key, r.size) for r in records] == [("a/b c.txt", 5), ("d", 7)]

    bad = InventoryFile("data/1.csv.gz", len(body), "0" * 32)
    seen = []
    with pytest.raises(IntegrityError, match="MD5 mismatch"):
        for batch in csv_records(manifest, bad, "d", verify_md5=True)(io.BytesIO(body), INFO):
            seen.extend(batch)
    assert [r.key for r in seen] == ["d"]  # the records came first, then the error


def test_parquet_files_are_read_from_their_path(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"key": ["k1", "k2", "x3"], "size": [1, 2, 3]}), path)
    batches = list(parquet_reader(columns=["size"], batch_size=2)(path))
    assert [b.num_rows for b in batches] == [2, 1]
    assert batches[0].schema.names == ["size"]

    data_file = InventoryFile("data/1.parquet", path.stat().st_size, None)
    read = parquet_records(_manifest("Parquet", []), data_file, "k", verify_md5=True)
    assert [r.key for batch in read(path) for r in batch] == ["k1", "k2"]
