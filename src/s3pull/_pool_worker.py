"""A worker process of the local pool: ``python -m s3pull._pool_worker``.

It reads its configuration and then shards on stdin, runs them with
:func:`run_shards` (one ``download_many`` on its own event loop, connection
pool and share of the memory budget) and writes outcomes and events on
stdout; see ``executors._wire`` for the lines. It is an interface, like
the CLI, above the client it drives: the executors never import the
client, so it lives outside them.

Stopping. The parent decides when a batch stops, so Ctrl-C and a closed
terminal (SIGINT, SIGHUP, sent to the whole process group) are ignored
here: the parent hears them and sends SIGTERM, which cancels the batch, so
its temp files and journals are removed before the process exits (143).
The end of stdin (the parent is done, or gone) lets the shards already
received finish, then the worker exits.

The worker is started with ``exec``, not ``fork``: a forked child would
inherit the parent's event loop, its threads (the loop thread of the sync
``Client``, botocore's), their locks in whatever state they were, and its
sockets. A fresh interpreter costs its start-up instead (measured in
``_pool``), once per batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from dataclasses import replace
from typing import Any

from ._client import AsyncClient
from .executors import LINE_LIMIT, Outbox, ShardOptions, adopt, config_from_json, run_shards
from .planning import Shard
from .scheduling import Breakers

EXIT_TERMINATED = 143


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        code = asyncio.run(_serve())
    except Exception as exc:  # one line for the parent to show, not a traceback
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    # No interpreter teardown: every file is renamed or removed by now.
    os._exit(code)


async def _serve() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout.buffer
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    init = json.loads(await reader.readline())["init"]
    outbox = Outbox(writer, events=init["events"])
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        await _work(init, reader, outbox)
    except asyncio.CancelledError:
        if terminated:
            return EXIT_TERMINATED
        raise
    return 0


async def _work(init: dict[str, Any], reader: asyncio.StreamReader, outbox: Outbox) -> None:
    # No metrics here: the events go to the parent, whose metrics count them.
    config = replace(config_from_json(init["config"]), processes=1, metrics=False)
    endpoint = init["endpoint"]
    client = AsyncClient(config=config, subscribers=[outbox], **endpoint)
    client.breakers.on_endpoint = outbox.breaker
    shards: asyncio.Queue[Shard | None] = asyncio.Queue()
    async with client:
        outbox.send({"ready": os.getpid()})
        await outbox.flush()
        helpers = [
            asyncio.create_task(outbox.run()),
            asyncio.create_task(_read(reader, shards, client.breakers)),
        ]
        try:
            options = ShardOptions.from_json(init["options"])
            async with aclosing(run_shards(client, _shards(shards), options)) as outcomes:
                async for number, outcome in outcomes:
                    outbox.outcome(number, outcome)
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with suppress(asyncio.CancelledError):
                    await helper
        await outbox.flush()
        outbox.send({"end": True})
        await outbox.flush()


async def _read(
    reader: asyncio.StreamReader, shards: asyncio.Queue[Shard | None], breakers: Breakers
) -> None:
    """Read stdin as it comes (a breaker change must not wait for the batch
    to want its next item): shards are queued (the parent sends at most a
    few ahead), breaker changes adopted at once."""
    while line := await reader.readline():
        message = json.loads(line)
        if "breaker" in message:
            breakers.adopt(*adopt(message["breaker"]))
        else:
            shards.put_nowait(Shard.from_json(message["shard"]))
    shards.put_nowait(None)


async def _shards(shards: asyncio.Queue[Shard | None]) -> AsyncIterator[Shard]:
    while (shard := await shards.get()) is not None:
        yield shard


if __name__ == "__main__":
    main()
