"""S3 Inventory: every object a manifest lists, from its data files, in
parallel, in bounded memory.

An inventory report is a ``manifest.json`` (``sourceBucket``,
``destinationBucket`` as an ARN, ``fileFormat``, ``fileSchema``, and
``files``: ``{key, size, MD5checksum}``) plus data files in the destination
bucket: gzipped CSV (keys URL-encoded) or Parquet. ORC is refused.

How it runs
-----------
``workers`` tasks (default 4) take data files from the manifest's list. A
CSV.gz file is read through the ordered stream with a modest window (default
8 MiB) and decompressed, parsed and turned into :class:`InventoryRecord`s on
a worker thread (see ``_pipeline``); its MD5 is computed over the compressed
bytes as they pass and compared with the manifest's at the end of the file.
A Parquet file is downloaded to a temp file (Parquet needs random access),
checked against its MD5, and read row group by row group. Batches of records
from all workers meet in one bounded queue that the caller drains: order
across files is not kept, memory does not grow with the inventory.

A data file whose MD5 does not match is an :class:`IntegrityError`, raised
after the records read from it (they cannot be taken back: check the error
before trusting a result). Faults below (resets, throttling, stalls) are
retried and resumed invisibly, as for every download.

Memory
------
With ``W`` workers on CSV.gz, all of it charged to the client's budget but
the last two terms::

    W x (window + PIPELINE_COST + GETs in flight x stream_cost)
  + (2 x W + 1) batches in the shared queue (<= 256 records each)
  + the caller's current batch

Defaults: 4 x (8 MiB + 2 MiB + ~3 x 768 KiB) ≈ 49 MiB of a 64 MiB budget. If
the budget cannot give every worker its window plus two GETs, the window
shrinks (down to 1 MiB), then the worker count: several streams that hold
windows could otherwise leave no budget for the GETs that fill them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from .._client import AsyncClient, remove_temp
from .._config import MiB
from .._errors import ConfigError, IntegrityError
from .._source import S3Source, parse_source
from .._units import parse_size
from ._parquet import close_batches, parquet_batches, parquet_module
from ._pipeline import PIPELINE_COST, CountingLines, batched, parse_in_thread
from ._text import CsvFormat, compression_for

#: Default data files read at once.
DEFAULT_WORKERS = 4
#: Default ordered-stream window of each CSV.gz data file.
DEFAULT_WINDOW = 8 * MiB
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

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self.raw = raw
        self.md5 = hashlib.md5()
        self.info = getattr(raw, "info", None)

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


class Inventory:
    """Reads every record of an S3 Inventory, its data files in parallel.

    Args:
        client: the client to read with (its budget bounds everything).
        manifest: ``s3://bucket/path/manifest.json``.
        workers: data files read at once (default 4).
        window: ordered-stream window per CSV.gz data file (default 8 MiB).
        memory_share: the fraction of the client's memory budget the reader
            may fill (1.0); downloading the records at the same time needs the
            rest (``s3pull inventory --download`` gives the reader half).
        verify_md5: check each data file against the manifest's MD5.

    Example:
        >>> url = "s3://inv/src/config/2024-01-01T01-00Z/manifest.json"
        >>> inventory = Inventory(client, url)  # doctest: +SKIP
        >>> async for record in inventory.records(prefix="logs/"):  # doctest: +SKIP
        ...     total += record.size or 0
    """

    def __init__(
        self,
        client: AsyncClient,
        manifest: str,
        *,
        workers: int = DEFAULT_WORKERS,
        window: int | str = DEFAULT_WINDOW,
        verify_md5: bool = True,
        memory_share: float = 1.0,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        if not 0 < memory_share <= 1:
            raise ConfigError(f"memory_share must be in (0, 1], got {memory_share}")
        self.memory_share = memory_share
        self.client = client
        self.source = parse_source(manifest)
        self.verify_md5 = verify_md5
        self.workers, self.window = self._fit(workers, parse_size(window))
        self._manifest: InventoryManifest | None = None

    def _fit(self, workers: int, window: int) -> tuple[int, int]:
        """Workers and window such that each worker's window, pipeline and two
        GETs fit in the budget together (see the module docstring)."""
        config = self.client.config
        limit = int(config.memory_limit * self.memory_share)
        overhead = PIPELINE_COST + 2 * config.stream_cost
        while workers > 1 and limit // workers - overhead < MiB:
            workers -= 1
        fitted = min(window, (limit // workers - overhead) // MiB * MiB)
        if fitted < MiB:
            raise ConfigError(
                f"memory_limit {config.memory_limit} bytes is too small to read an inventory "
                f"(one worker needs {MiB + overhead} bytes)"
            )
        return workers, fitted

    async def manifest(self) -> InventoryManifest:
        """The parsed manifest (read once)."""
        if self._manifest is None:
            async with self.client.open(self.source, window=MiB) as stream:
                document = await stream.read()
            self._manifest = parse_manifest(document, source=self.source.redacted)
        return self._manifest

    async def records(self, prefix: str | None = None) -> AsyncGenerator[InventoryRecord, None]:
        """Every record (optionally only keys starting with ``prefix``), in no
        particular order across data files."""
        async with aclosing(self.batches(prefix)) as batches:
            async for batch in batches:
                for record in batch:
                    yield record

    async def batches(
        self, prefix: str | None = None
    ) -> AsyncGenerator[list[InventoryRecord], None]:
        """Records in batches (cheaper to move between threads than one by one)."""
        manifest = await self.manifest()
        todo = deque(manifest.files)
        queue: asyncio.Queue[Any] = asyncio.Queue(2 * self.workers + 1)

        async def work() -> None:
            try:
                while todo:
                    data_file = todo.popleft()
                    async with aclosing(self._file_batches(manifest, data_file, prefix)) as parts:
                        async for batch in parts:
                            await queue.put(batch)
            except Exception as error:
                await queue.put(error)
            finally:
                # Not on cancellation: then nobody reads the queue any more.
                if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    await queue.put(None)

        tasks = [asyncio.create_task(work()) for _ in range(min(self.workers, len(todo)))]
        try:
            running = len(tasks)
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                elif item:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _file_batches(
        self, manifest: InventoryManifest, data_file: InventoryFile, prefix: str | None
    ) -> AsyncGenerator[list[InventoryRecord], None]:
        url = manifest.url(data_file)
        if manifest.file_format == "CSV":
            return self._csv_batches(manifest, data_file, url, prefix)
        return self._parquet_batches(manifest, data_file, url, prefix)

    async def _csv_batches(
        self,
        manifest: InventoryManifest,
        data_file: InventoryFile,
        url: str,
        prefix: str | None,
    ) -> AsyncGenerator[list[InventoryRecord], None]:
        make = _record_maker(manifest.file_schema, manifest.source_bucket, url_encoded=True)
        source = S3Source(manifest.destination_bucket, data_file.key)
        fmt = CsvFormat(compression=compression_for(source, "auto"))  # AWS writes .csv.gz
        expected = data_file.md5 if self.verify_md5 else None

        def parse(reader: Any) -> Iterator[list[InventoryRecord]]:
            # On the parsing thread: inflate, parse, make records, hash.
            hashing = _Hashing(reader)
            raw = io.BufferedReader(hashing, 64 * 1024)
            with fmt.open_text(raw, reader.info) as text:
                counter = CountingLines(text)
                records: Iterable[InventoryRecord] = map(make, fmt.items(counter))
                if prefix:
                    records = (r for r in records if r.key.startswith(prefix))
                yield from batched(records, counter)
                while raw.read(_HASH_BLOCK):  # bytes after the last row, if any
                    pass
            _check_md5(url, expected, hashing.md5.hexdigest())

        async with aclosing(parse_in_thread(self.client, source, parse, window=self.window)) as it:
            async for batch in it:
                yield batch

    async def _parquet_batches(
        self,
        manifest: InventoryManifest,
        data_file: InventoryFile,
        url: str,
        prefix: str | None,
    ) -> AsyncGenerator[list[InventoryRecord], None]:
        parquet_module()
        path = await self.client._download_temp(url, None, None)
        try:
            if self.verify_md5:
                _check_md5(url, data_file.md5, await asyncio.to_thread(_md5_file, path))
            columns = await asyncio.to_thread(_parquet_columns, path)
            make = _record_maker(columns, manifest.source_bucket, url_encoded=False)
            batches = parquet_batches(path, None, PARQUET_BATCH)

            def next_records() -> list[InventoryRecord] | None:
                batch = next(batches, None)
                if batch is None:
                    return None
                rows = zip(*(column.to_pylist() for column in batch.columns), strict=True)
                records = [make(list(row)) for row in rows]
                return [r for r in records if r.key.startswith(prefix)] if prefix else records

            try:
                while (records := await asyncio.to_thread(next_records)) is not None:
                    yield records
            finally:
                close_batches(batches)
        finally:
            remove_temp(path)


def _md5_file(path: Any) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _parquet_columns(path: Any) -> list[str]:
    pq = parquet_module()
    with pq.ParquetFile(path) as parquet:
        return list(parquet.schema_arrow.names)
