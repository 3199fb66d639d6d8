"""S3 Inventory reports: the manifest, and the records of its data files.

An inventory report is a ``manifest.json`` (``sourceBucket``,
``destinationBucket`` as an ARN, ``fileFormat``, ``fileSchema``, and
``files``: ``{key, size, MD5checksum}``) plus data files in the destination
bucket: gzipped CSV (keys URL-encoded) or Parquet. ORC is refused.

This module parses what it is handed: a manifest's bytes
(:func:`parse_manifest`), a CSV.gz data file as a binary stream
(:func:`csv_records`: inflated, parsed and turned into
:class:`InventoryRecord`s, its MD5 computed over the compressed bytes as they
pass and compared with the manifest's at the end), or a Parquet data file
as a local path (:func:`parquet_records`: checked against its MD5, read row
group by row group). Reading the data files in parallel, in bounded memory,
is ``s3pull.Inventory``'s (``scheduling._inventory``).

A data file whose MD5 does not match is an :class:`IntegrityError`, raised
after the records read from it (they cannot be taken back: check the error
before trusting a result).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote_plus

from .._errors import ConfigError, IntegrityError
from .._results import ObjectInfo
from .._source import S3Source
from ._batching import CountingLines, batched
from ._parquet import parquet_batches, parquet_module
from ._text import CsvFormat, compression_for

#: Rows per Parquet record batch.
PARQUET_BATCH = 4096
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """One object listed by an inventory.

    Attributes:
        bucket: the source bucket.
        key: the object key, URL-decoded.
        size: bytes, or None (delete markers).
        last_modified: when the object was written, if listed.
        etag: the ETag (without quotes), if listed.
        storage_class: ``STANDARD``, ``GLACIER``..., if listed.
        version_id: the version (``"null"`` for one written before the bucket
            was versioned), in an inventory of all versions.
        is_latest: whether this version is the current one, in an inventory
            of all versions (None in one of current versions only).
        is_delete_marker: whether this version is a delete marker, likewise.
        extra: every other column, by its name in the schema.
    """

    bucket: str
    key: str
    size: int | None = None
    last_modified: datetime | None = None
    etag: str | None = None
    storage_class: str | None = None
    version_id: str | None = None
    is_latest: bool | None = None
    is_delete_marker: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_current(self) -> bool:
        """Whether the record is of an object as the bucket holds it now: not a
        noncurrent version, not a delete marker (an inventory of current
        versions lists nothing else).

        Example:
            >>> InventoryRecord("b", "k", 5, version_id="v2", is_latest=False).is_current
            False
        """
        return self.is_latest is not False and not self.is_delete_marker

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601)."""
        extra = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.extra.items()}
        return {
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
            "etag": self.etag,
            "storage_class": self.storage_class,
            **self._version_fields(),
            **({"extra": extra} if extra else {}),
        }

    def _version_fields(self) -> dict[str, Any]:
        """The version columns, in the JSON of a record that has them only."""
        fields = {
            "version_id": self.version_id,
            "is_latest": self.is_latest,
            "is_delete_marker": self.is_delete_marker,
        }
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True)
class InventoryFile:
    """One data file of an inventory, as the manifest lists it."""

    key: str
    size: int
    md5: str | None


@dataclass(frozen=True)
class InventoryManifest:
    """What an inventory's ``manifest.json`` says."""

    source_bucket: str
    destination_bucket: str
    file_format: str  # "CSV" or "Parquet"
    file_schema: list[str]  # CSV column names; empty for Parquet (the files carry theirs)
    files: list[InventoryFile]

    def url(self, data_file: InventoryFile) -> str:
        return f"s3://{self.destination_bucket}/{data_file.key}"


def parse_manifest(document: bytes | str, *, source: str = "manifest.json") -> InventoryManifest:
    """Read an AWS S3 Inventory ``manifest.json``.

    Example:
        >>> parse_manifest('{"sourceBucket": "b", "destinationBucket": "arn:aws:s3:::inv",'
        ...     ' "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size", "files": []}').file_schema
        ['Bucket', 'Key', 'Size']
    """
    try:
        data = json.loads(document)
        destination = str(data["destinationBucket"])
        file_format = str(data["fileFormat"])
        files = [
            InventoryFile(str(f["key"]), int(f.get("size", -1)), f.get("MD5checksum"))
            for f in data["files"]
        ]
        source_bucket = str(data["sourceBucket"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not an S3 Inventory manifest: {exc}", source=source) from exc
    kind = file_format.lower()
    if kind == "orc":
        raise ConfigError(
            "ORC inventories are not supported; configure the inventory as CSV or Parquet",
            source=source,
        )
    if kind not in ("csv", "parquet"):
        raise ConfigError(f"unknown inventory fileFormat {file_format!r}", source=source)
    schema: list[str] = []
    if kind == "csv":
        schema = [name.strip() for name in str(data.get("fileSchema", "")).split(",")]
        if "Key" not in schema:
            raise ConfigError("the CSV fileSchema has no Key column", source=source)
    return InventoryManifest(
        source_bucket=source_bucket,
        destination_bucket=destination.rsplit(":", 1)[-1]
        if destination.startswith("arn:")
        else destination,
        file_format="CSV" if kind == "csv" else "Parquet",
        file_schema=schema,
        files=files,
    )


def _normal(name: str) -> str:
    """``LastModifiedDate`` (CSV) and ``last_modified_date`` (Parquet) alike."""
    return name.replace("_", "").lower()


_KNOWN = {
    "bucket",
    "key",
    "size",
    "lastmodifieddate",
    "etag",
    "storageclass",
    "versionid",
    "islatest",
    "isdeletemarker",
}


def _flag(value: Any) -> bool | None:
    """A boolean column: ``true``/``false`` in CSV, a bool in Parquet."""
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _record_maker(
    names: list[str], bucket: str, *, url_encoded: bool
) -> Callable[[list[Any]], InventoryRecord]:
    """A function from one row (values in ``names`` order) to a record."""
    index = {_normal(name): i for i, name in enumerate(names)}
    extras = [(name, i) for i, name in enumerate(names) if _normal(name) not in _KNOWN]

    def get(row: list[Any], column: str) -> Any:
        i = index.get(column)
        value = row[i] if i is not None and i < len(row) else None
        return None if value == "" else value

    def make(row: list[Any]) -> InventoryRecord:
        key = get(row, "key") or ""
        size = get(row, "size")
        modified = get(row, "lastmodifieddate")
        return InventoryRecord(
            bucket=get(row, "bucket") or bucket,
            key=unquote_plus(key) if url_encoded else key,
            size=int(size) if size is not None else None,
            last_modified=datetime.fromisoformat(modified)
            if isinstance(modified, str)
            else modified,
            etag=get(row, "etag"),
            storage_class=get(row, "storageclass"),
            version_id=get(row, "versionid"),
            is_latest=_flag(get(row, "islatest")),
            is_delete_marker=_flag(get(row, "isdeletemarker")),
            extra={name: row[i] for name, i in extras if i < len(row)},
        )

    return make


class _Hashing(io.RawIOBase):
    """Passes bytes through and hashes them (MD5 of a data file as streamed)."""

    def __init__(self, raw: Any) -> None:  # any binary file object with readinto()
        super().__init__()
        self.raw = raw
        self.md5 = hashlib.md5()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self.raw.readinto(buffer)
        self.md5.update(memoryview(buffer)[:n])
        return n


def _check_md5(url: str, expected: str | None, digest: str) -> None:
    if expected and expected.lower() != digest:
        raise IntegrityError(
            f"MD5 mismatch for an inventory data file: the manifest says {expected}, "
            f"its bytes give {digest}",
            source=url,
        )


def data_source(manifest: InventoryManifest, data_file: InventoryFile) -> S3Source:
    """Where a data file of the inventory is."""
    return S3Source(manifest.destination_bucket, data_file.key)


def _wanted(records: Iterable[InventoryRecord], prefix: str | None) -> Iterable[InventoryRecord]:
    return (r for r in records if r.key.startswith(prefix)) if prefix else records


def csv_records(
    manifest: InventoryManifest, data_file: InventoryFile, prefix: str | None, *, verify_md5: bool
) -> Callable[[BinaryIO, ObjectInfo], Iterator[list[InventoryRecord]]]:
    """The parser of one CSV.gz data file's bytes: batches of its records
    (only keys starting with ``prefix``, if given), its MD5 checked at the end."""
    make = _record_maker(manifest.file_schema, manifest.source_bucket, url_encoded=True)
    source = data_source(manifest, data_file)
    fmt = CsvFormat(compression=compression_for(source, "auto"))  # AWS writes .csv.gz
    expected = data_file.md5 if verify_md5 else None
    url = manifest.url(data_file)

    def parse(reader: BinaryIO, info: ObjectInfo) -> Iterator[list[InventoryRecord]]:
        # On the parsing thread: inflate, parse, make records, hash.
        hashing = _Hashing(reader)
        raw = io.BufferedReader(hashing, 64 * 1024)
        with fmt.open_text(raw, info) as text:
            counter = CountingLines(text)
            yield from batched(_wanted(map(make, fmt.items(counter)), prefix), counter)
            while raw.read(_HASH_BLOCK):  # bytes after the last row, if any
                pass
        _check_md5(url, expected, hashing.md5.hexdigest())

    return parse


def parquet_records(
    manifest: InventoryManifest, data_file: InventoryFile, prefix: str | None, *, verify_md5: bool
) -> Callable[[Path], Iterator[list[InventoryRecord]]]:
    """The parser of one Parquet data file on disk: checked against its MD5,
    then its records (only keys starting with ``prefix``, if given), one
    record batch of the file at a time. pyarrow is checked for now."""
    parquet_module()
    url = manifest.url(data_file)

    def parse(path: Path) -> Iterator[list[InventoryRecord]]:
        if verify_md5:
            _check_md5(url, data_file.md5, _md5_file(path))
        make = _record_maker(_parquet_columns(path), manifest.source_bucket, url_encoded=False)
        for batch in parquet_batches(path, None, PARQUET_BATCH):
            rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
            yield list(_wanted((make(list(row)) for row in rows), prefix))

    return parse


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _parquet_columns(path: Path) -> list[str]:
    pq = parquet_module()
    with pq.ParquetFile(path) as parquet:
        return list(parquet.schema_arrow.names)
