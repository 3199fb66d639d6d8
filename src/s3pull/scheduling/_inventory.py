"""S3 Inventory: every object a manifest lists, from its data files, in
parallel, in bounded memory.

The report's format and its parsers are ``consumers._inventory``'s; this
module reads the data files with a client, through the wiring every
consumer uses (``_consume``).

How it runs
-----------
``workers`` tasks (default 4) take data files from the manifest's list. A
CSV.gz file is read through the ordered stream with a modest window (default
8 MiB) and decompressed, parsed and turned into :class:`InventoryRecord`s on
a worker thread (:meth:`Pipelines.parse_stream`); its MD5 is computed over
the compressed bytes as they pass and compared with the manifest's at the
end of the file. A Parquet file is downloaded to a temp file (Parquet needs
random access), checked against its MD5, and read row group by row group
(:meth:`Pipelines.file_items`). Batches of records from all workers meet in
one bounded queue that the caller drains: order across files is not kept,
memory does not grow with the inventory.

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
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Protocol

from .._config import MiB, TransferConfig
from .._errors import ConfigError
from .._source import parse_source
from .._units import parse_size
from ..consumers import (
    InventoryFile,
    InventoryManifest,
    InventoryRecord,
    csv_records,
    data_source,
    parquet_records,
    parse_manifest,
)
from ._consume import PIPELINE_COST, Pipelines

#: Default data files read at once.
DEFAULT_WORKERS = 4
#: Default ordered-stream window of each CSV.gz data file.
DEFAULT_WINDOW = 8 * MiB


class Reading(Protocol):
    """What an inventory reads with: a client's config and its pipelines."""

    @property
    def config(self) -> TransferConfig: ...

    @property
    def pipelines(self) -> Pipelines: ...


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
        client: Reading,
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

    @property
    def planned_bytes(self) -> int:
        """The reader's share of the client's memory budget."""
        return int(self.client.config.memory_limit * self.memory_share)

    def _fit(self, workers: int, window: int) -> tuple[int, int]:
        """Workers and window such that each worker's window, pipeline and two
        GETs fit in the budget together (see the module docstring)."""
        config = self.client.config
        limit = self.planned_bytes
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
            document = await self.client.pipelines.read(self.source, window=MiB)
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
        # The reader's workers and windows are planned on its share of the
        # budget: while it reads, nothing may lend that share away or give it
        # to a process pool's workers.
        with self.client.pipelines.budget.planned_share(self.planned_bytes):
            async with aclosing(self._batches(prefix)) as batches:
                async for batch in batches:
                    yield batch

    async def _batches(self, prefix: str | None) -> AsyncGenerator[list[InventoryRecord], None]:
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
        pipelines = self.client.pipelines
        if manifest.file_format == "CSV":
            parse = csv_records(manifest, data_file, prefix, verify_md5=self.verify_md5)
            source = data_source(manifest, data_file)
            return pipelines.parse_stream(source, parse, window=self.window)
        read = parquet_records(manifest, data_file, prefix, verify_md5=self.verify_md5)
        return pipelines.file_items(manifest.url(data_file), read)
