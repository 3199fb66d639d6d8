"""The per-connection loop of one server, over the state its connections share.

Runs on the server's event loop. The shared state (rules, records, counters,
the object store) is :class:`~._state.ServerState`; each request on a
connection is served by an :class:`~._handler.Exchange`.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ._handler import Exchange, abort_with_rst
from ._http import BadRequest, read_request, response_head
from ._record import RequestRecord
from ._state import ServerState
from ._store import Store


class Engine(ServerState):
    """A server's shared state, and the loop that serves each connection."""

    def __init__(self, store: Store, *, chunk_size: int = 1 << 20) -> None:
        super().__init__(store, chunk_size=chunk_size)
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._connections = itertools.count(1)

    # ----------------------------------------------------------------- connections

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.writers.add(writer)
        connection = next(self._connections)
        try:
            refusal = self.take_refusal()
            if refusal is not None:
                if refusal:
                    abort_with_rst(writer)
                else:
                    writer.close()
                return
            writer.transport.set_write_buffer_limits(high=self.chunk_size)
            for number in itertools.count():
                try:
                    request = await read_request(reader)
                except BadRequest as exc:
                    await self._bad_request(writer, exc, connection)
                    return
                if request is None:
                    return
                exchange = Exchange(self, request, reader, writer, f"{connection:06X}{number:06X}")
                exchange.connection = connection
                if not await exchange.run() or not request.keep_alive:
                    return
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away: normal for a fault server
        except asyncio.CancelledError:
            # Server shutdown. Not re-raised: asyncio's own done-callback on this
            # task calls task.exception(), which would raise and log it.
            pass
        except Exception:
            self.note_error(f"connection {connection}")
        finally:
            if task is not None:
                self.tasks.discard(task)
            writer.close()
            if not writer.transport.get_write_buffer_size():
                self.writers.discard(writer)

    async def _bad_request(
        self, writer: asyncio.StreamWriter, exc: BadRequest, connection: int
    ) -> None:
        body = exc.message.encode()
        headers = {"Content-Type": "text/plain", "Content-Length": str(len(body))}
        self.record(
            RequestRecord(
                "", "", "", {}, None, None, None, exc.status, 0, {}, (), "bad_request", connection
            )
        )
        writer.write(response_head(exc.status, headers, "-", close=True) + body)
        await writer.drain()

    async def close_all(self) -> None:
        """Server shutdown: cut every connection, including held and stalled ones."""
        for writer in list(self.writers):
            writer.transport.abort()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.writers.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks
