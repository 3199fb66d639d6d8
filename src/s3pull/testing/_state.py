"""The state all connections of one server share: store, fault rules, records.

Guarded by :attr:`ServerState.lock` (the object store has its own lock),
because the test thread reads and changes it while the server's event loop
serves requests. Each request's :class:`~._handler.Exchange` sees only this
state, not the connection loop that made it (``_engine.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import traceback
from typing import IO

from ._faults import Fault, FaultRule
from ._record import RequestRecord
from ._store import BytesBody, GeneratedBody, Store, StoredObject, compute_etag


class ServerState:
    """State shared by all connections of one server."""

    def __init__(self, store: Store, *, chunk_size: int = 1 << 20) -> None:
        self.store = store
        self.chunk_size = chunk_size
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.rules: list[FaultRule] = []
        self.records: list[RequestRecord] = []
        #: Requests whose head was read, ended or not.
        self.started = 0
        self.sent: dict[tuple[str, str], int] = {}
        self.errors: list[str] = []
        self.refuse_remaining = 0
        self.refuse_rst = False
        self.refused = 0
        self.log_file: IO[str] | None = None
        self._replacements = itertools.count(1)

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
