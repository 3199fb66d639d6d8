"""State shared by all connections of one server, and the per-connection loop.

Runs on the server's event loop. Everything shared with the test thread
(rules, records, counters) is guarded by :attr:`Engine.lock`; the object store
has its own lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
import time
import traceback
from typing import IO, Any

from ._faults import Fault, FaultRule
from ._handler import Exchange, abort_with_rst
from ._http import BadRequest, read_request, response_head
from ._record import RequestRecord
from ._store import BytesBody, GeneratedBody, Store, StoredObject, compute_etag


class Engine:
    """State shared by all connections of one server."""

    def __init__(self, store: Store, *, chunk_size: int = 1 << 20) -> None:
        self.store = store
        self.chunk_size = chunk_size
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.rules: list[FaultRule] = []
        self.records: list[RequestRecord] = []
        self.sent: dict[tuple[str, str], int] = {}
        self.errors: list[str] = []
        self.refuse_remaining = 0
        self.refuse_rst = False
        self.refused = 0
        self.log_file: IO[str] | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._connections = itertools.count(1)
        self._replacements = itertools.count(1)

    # ----------------------------------------------------------------- shared state

    def match(self, method: str, bucket: str, key: str, range_start: int | None) -> list[Fault]:
        with self.lock:
            return [
                rule.fault for rule in self.rules if rule.consider(method, bucket, key, range_start)
            ]

    def add_sent(self, bucket: str, key: str, count: int) -> None:
        with self.lock:
            self.sent[bucket, key] = self.sent.get((bucket, key), 0) + count

    def record(self, record: RequestRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()
            if self.log_file is not None:
                self.log_file.write(record.to_json() + "\n")
                self.log_file.flush()

    def note_error(self, context: str) -> None:
        with self.lock:
            self.errors.append(f"{context}\n{traceback.format_exc()}")

    def replace_object(self, bucket: str, key: str, fault: Fault) -> None:
        """The ``replace`` fault: a new body and ETag (a new version if versioned)."""
        old = self.store.find(bucket, key)
        if old is None:
            return
        body: BytesBody | GeneratedBody
        if fault.data is not None:
            body = BytesBody(fault.data)
        else:
            body = GeneratedBody(key, old.size, seed=1_000_000 + next(self._replacements))
        etag = fault.etag or compute_etag(body, old.part_size)
        if etag.strip('"') == old.etag:  # same bytes (e.g. empty): the ETag must still change
            etag = hashlib.md5(f"{old.etag}+replaced".encode(), usedforsecurity=False).hexdigest()
        new = StoredObject(
            bucket,
            key,
            body,
            etag=etag,
            last_modified=max(time.time(), old.last_modified + 1),
            content_type=old.content_type,
            content_encoding=old.content_encoding,
            checksum_algorithm=old.checksum_algorithm,
            checksum_type=old.checksum_type,
            part_size=old.part_size,
            metadata=old.metadata,
        )
        self.store.put(new)

    def take_refusal(self) -> bool | None:
        """None to serve the connection; else refuse it (True = with RST)."""
        with self.lock:
            if self.refuse_remaining <= 0:
                return None
            self.refuse_remaining -= 1
            self.refused += 1
            return self.refuse_rst

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
