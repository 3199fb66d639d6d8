"""Running shards: the one entry point every executor's worker calls.

A shard is run by ``download_many``, whichever process runs it: the local
pool's worker processes call :func:`run_shards` with the shards its parent
sends, a Celery task calls :func:`run_shard` with the shard of its message.
Both yield the outcomes as the batch finishes them, tagged with the number
of the item they belong to, so that the process that planned the batch can
tell which items are done.

What crosses the process boundary is JSON: the shard, the options
(:class:`ShardOptions`), the configuration (:func:`config_to_json`) and the
outcomes (``ObjectOutcome.to_json``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from .._config import BreakerConfig, RetryConfig, Timeouts, TransferConfig
from .._results import ObjectOutcome
from ..planning import Shard, ShardItem


class ManyDownloader(Protocol):
    """What runs a shard: ``AsyncClient.iter_download_many``."""

    def iter_download_many(
        self,
        items: AsyncIterable[ShardItem],
        destination: None = None,
        *,
        skip_existing: bool = False,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> AsyncGenerator[ObjectOutcome, None]: ...


@dataclass(frozen=True, kw_only=True)
class ShardOptions:
    """The batch options every shard of a batch runs with (see ``download_many``)."""

    skip_existing: bool = False
    fail_fast: bool = False
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardOptions:
        return cls(**data)


async def run_shards(
    client: ManyDownloader, shards: AsyncIterable[Shard], options: ShardOptions
) -> AsyncGenerator[tuple[int, ObjectOutcome], None]:
    """Run the items of every shard ``shards`` yields as one ``download_many``
    (so that a worker's downloads never drain between two shards); yield
    ``(item id, outcome)`` as each finishes."""
    # Every item of a batch has its own destination (the planner refused
    # clashes), and every outcome names it: the path finds the item's id.
    numbers: dict[str, int] = {}

    async def items() -> AsyncIterator[ShardItem]:
        async for shard in shards:
            for item in shard.items:
                numbers[str(Path(item.path))] = item.id
                yield item

    outcomes = client.iter_download_many(
        items(),
        skip_existing=options.skip_existing,
        fail_fast=options.fail_fast,
        dry_run=options.dry_run,
    )
    async with aclosing(outcomes):
        async for outcome in outcomes:
            yield numbers.pop(str(outcome.path)), outcome


async def run_shard(
    client: ManyDownloader, shard: dict[str, Any], options: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Run one shard given as JSON; yield each outcome as JSON, with its item's ``id``.

    Example:
        >>> async for line in run_shard(client, shard_json, {}):  # doctest: +SKIP
        ...     print(line["id"], line["status"])
    """

    async def one() -> AsyncIterator[Shard]:
        yield Shard.from_json(shard)

    async with aclosing(run_shards(client, one(), ShardOptions.from_json(options))) as outcomes:
        async for number, outcome in outcomes:
            yield {"id": number, **outcome.to_json()}


def config_to_json(config: TransferConfig) -> dict[str, Any]:
    """A :class:`TransferConfig` as JSON (the SSE-C key in base64: it goes only
    to a process of the same user, over a pipe)."""
    data = {f.name: getattr(config, f.name) for f in fields(config)}
    for name in ("timeouts", "retry", "breakers"):
        data[name] = asdict(data[name])
    if config.sse_c_key is not None:
        data["sse_c_key"] = base64.b64encode(config.sse_c_key).decode()
    return data


def config_from_json(data: dict[str, Any]) -> TransferConfig:
    """The inverse of :func:`config_to_json`."""
    values = dict(data)
    if values.get("sse_c_key") is not None:
        values["sse_c_key"] = base64.b64decode(values["sse_c_key"])
    values["timeouts"] = Timeouts(**values["timeouts"])
    values["retry"] = RetryConfig(**values["retry"])
    values["breakers"] = BreakerConfig(**values["breakers"])
    return TransferConfig(**values)
