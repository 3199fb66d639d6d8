"""FaultServer: an S3-compatible HTTP server that breaks on purpose.

Why a raw asyncio server
------------------------
The faults a download client must survive live below HTTP: a reset half-way
through a body, a FIN before ``Content-Length`` is reached, bytes beyond it,
headers followed by silence. Frameworks (aiohttp, http.server) finish or
repair responses for us, so - like urllib3's ``test_socketlevel.py`` - the
server is written on ``asyncio.start_server`` with a minimal HTTP/1.1 reader
(``_http.py``) and writes every byte itself. Normal responses stay fast:
bodies go out in ``chunk_size`` writes from memoryview slices (awaiting
``drain()`` in between, so memory stays flat) or with ``loop.sendfile`` for
file-backed objects, which lets tests download objects of hundreds of MB.

The server runs its own event loop on a background thread, so tests can drive
it from plain synchronous code, from a subprocess (``python -m
s3pull.testing``), or from asyncio code whose loop it never shares (a client
that blocks its loop cannot hide a server bug, and vice versa).

How faults are matched
----------------------
A test attaches :class:`Fault` s to requests with :meth:`FaultServer.add_fault`,
which returns a :class:`FaultRule`. For each request the server resolves the
bucket, key, method (``GET``/``HEAD``, or ``LIST`` for ListObjectsV2) and the
first byte of its Range, then asks every rule, in the order they were added,
whether it matches. Each rule counts its own matching requests; its fault hits
the ones numbered ``skip`` to ``skip + times - 1`` (all from ``skip`` on when
``times`` is None). Every fault that hits a request applies, in four steps:

1. state changes - ``replace`` (new bytes and ETag) and ``delete``;
2. ``delay``, then terminal faults, the first one wins - ``status`` (an S3
   error response), ``refuse`` (close unanswered), ``hang`` (never answer);
3. request rewrites - ``ignore_if_match``, ``ignore_range``, then the normal
   S3 answer (404, 412, 416, 200 or 206) with header faults
   (``wrong_content_range``, ``missing_content_range``);
4. body faults - ``flip_byte``, ``drip``, and at most one cut (the first of
   ``headers_only``, ``stall``, ``reset``, ``truncate``), else ``extra_bytes``.

Held connections (``hang``, ``headers_only``, ``stall``) wait until the client
closes them or the server shuts down; :meth:`FaultServer.close` aborts every
connection, so nothing outlives the server. Each request, faulted or not, is
recorded as a :class:`RequestRecord` once it ends.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any, Self

from ._engine import Engine
from ._faults import Fault, FaultRule, Method, parse_script
from ._http import MAX_HEAD
from ._record import RequestRecord
from ._store import (
    BytesBody,
    FileBody,
    GeneratedBody,
    S3Error,
    Store,
    StoredObject,
)

_Data = bytes | bytearray | memoryview | os.PathLike[str]


class FaultServer:
    """A fault-injecting, S3-compatible HTTP server on 127.0.0.1 (path-style URLs).

    Args:
        host: address to listen on.
        port: port, 0 for a free one (see :attr:`endpoint_url`).
        log_path: if set, every completed request is appended there as one JSON line.
        chunk_size: body write size.

    Example:
        >>> with FaultServer() as s3:  # doctest: +SKIP
        ...     s3.create_bucket("b")
        ...     s3.put_object("b", "k", b"data")
        ...     s3.add_fault("b", "k", Fault.status(503, times=2))
        ...     url = f"{s3.endpoint_url}/b/k"  # first two GETs get 503 SlowDown
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | os.PathLike[str] | None = None,
        chunk_size: int = 1 << 20,
    ) -> None:
        self.host = host
        self.port = port
        self._log_path = log_path
        self._store = Store()
        self._engine = Engine(self._store, chunk_size=chunk_size)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._log_file: IO[str] | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start serving on a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FaultServer already started")
        if self._log_path is not None:
            self._log_file = open(self._log_path, "a", encoding="utf-8")  # noqa: SIM115
            self._engine.log_file = self._log_file
        self._thread = threading.Thread(target=self._run, name="s3pull-fault-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._close_log()
            raise self._startup_error
        return self

    def close(self) -> None:
        """Stop serving and cut every connection (held and stalled ones too). Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop already stopped
        thread.join(timeout=30)
        self._close_log()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the caller's event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _close_log(self) -> None:
        if self._log_file is not None:
            with self._engine.lock:
                self._engine.log_file = None
            self._log_file.close()
            self._log_file = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), never lost on the thread
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                self._engine.errors.append(f"server loop crashed: {exc!r}")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._stop = asyncio.Event()
        server = await asyncio.start_server(
            self._engine.handle_connection, self.host, self.port, limit=MAX_HEAD
        )
        self.port = server.sockets[0].getsockname()[1]
        self._loop = loop
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            await self._engine.close_all()
            await server.wait_closed()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Recorded, not printed: tests assert `errors` is empty instead of reading stderr.
        exception = context.get("exception")
        message = context.get("message", "")
        with self._engine.lock:
            self._engine.errors.append(f"{message}: {exception!r}")

    # ----------------------------------------------------------------- objects

    def create_bucket(self, name: str, *, versioned: bool = False) -> None:
        """Create a bucket (no-op if it exists; ``versioned=True`` turns versioning on).

        Example:
            >>> s3.create_bucket("b", versioned=True)  # doctest: +SKIP
        """
        self._store.create_bucket(name, versioned)

    def put_object(
        self,
        bucket: str,
        key: str,
        data: _Data = b"",
        *,
        etag: str | None = None,
        content_type: str = "application/octet-stream",
        content_encoding: str | None = None,
        checksum_algorithm: str | None = None,
        checksum_type: str = "FULL_OBJECT",
        checksum_value: str | None = None,
        part_size: int | None = None,
        metadata: Mapping[str, str] | None = None,
        version_id: str | None = None,
        last_modified: float | None = None,
        encryption: str | None = None,
    ) -> StoredObject:
        """Store an object (a new version in a versioned bucket); creates the bucket if needed.

        Args:
            bucket: bucket name.
            key: the key, stored verbatim (``../x``, spaces, unicode are all fine).
            data: the body, or a path (``os.PathLike``) to a file served from disk.
            etag: ETag to report (default: MD5 of the body, or the multipart form
                ``md5-N`` when ``part_size`` is given); e.g. ``"abc-3"``.
            content_type: served as Content-Type.
            content_encoding: served as Content-Encoding; the body is never re-encoded.
            checksum_algorithm: ``CRC32``, ``CRC32C``, ``CRC64NVME``, ``SHA1`` or ``SHA256``.
            checksum_type: ``FULL_OBJECT`` or ``COMPOSITE`` (then over ``part_size`` parts).
            checksum_value: report this base64 value instead of computing it (e.g. a
                wrong one).
            part_size: part size of the simulated multipart upload.
            metadata: served as ``x-amz-meta-<name>`` headers.
            version_id: version id to use in a versioned bucket (default: generated).
            last_modified: seconds since the epoch (default: now).
            encryption: served as ``x-amz-server-side-encryption`` (e.g.
                ``"aws:kms"``, whose ETag is not the MD5 of the body: pass ``etag``).

        Returns:
            The stored version (its ``etag`` and ``version_id`` are what responses carry).

        Example:
            >>> obj = s3.put_object("b", "k", b"x", checksum_algorithm="CRC32C")  # doctest: +SKIP
            >>> obj.checksum  # doctest: +SKIP
            'ahCmFA=='
        """
        if isinstance(data, os.PathLike):
            body: BytesBody | FileBody | GeneratedBody = FileBody(data)
        else:
            body = BytesBody(bytes(data))
        return self._put(
            bucket,
            key,
            body,
            etag=etag,
            content_type=content_type,
            content_encoding=content_encoding,
            checksum_algorithm=checksum_algorithm,
            checksum_type=checksum_type,
            checksum_value=checksum_value,
            part_size=part_size,
            metadata=dict(metadata or {}),
            version_id=version_id,
            last_modified=last_modified,
            encryption=encryption,
        )

    def put_generated(
        self, bucket: str, key: str, size: int, *, seed: int = 0, **options: Any
    ) -> StoredObject:
        """Store an object whose ``size`` bytes are generated on demand (no memory held).

        The bytes are :func:`generate_bytes(key, size, seed) <generate_bytes>`.
        ``options`` are those of :meth:`put_object`.

        Example:
            >>> s3.put_generated("b", "big", 1 << 30).size  # doctest: +SKIP
            1073741824
        """
        return self._put(bucket, key, GeneratedBody(key, size, seed), **options)

    def put_many(
        self,
        bucket: str,
        keys: Iterable[str],
        *,
        size: int = 0,
        seed: int = 0,
        last_modified: float | None = None,
    ) -> int:
        """Add many generated objects cheaply (one sort, lazy ETags); returns how many.

        Example:
            >>> s3.put_many("b", (f"k{i:06d}" for i in range(100_000)), size=16)  # doctest: +SKIP
            100000
        """
        self._store.create_bucket(bucket)
        objects = (
            StoredObject(bucket, key, GeneratedBody(key, size, seed), last_modified=last_modified)
            for key in keys
        )
        return self._store.put_many(bucket, objects)

    def _put(
        self, bucket: str, key: str, body: BytesBody | FileBody | GeneratedBody, **options: Any
    ) -> StoredObject:
        self._store.create_bucket(bucket)
        return self._store.put(StoredObject(bucket, key, body, **options))

    def get_object(self, bucket: str, key: str, version_id: str | None = None) -> StoredObject:
        """The stored object (latest version by default). Raises KeyError if absent.

        Example:
            >>> s3.get_object("b", "k").read()  # doctest: +SKIP
            b'data'
        """
        try:
            return self._store.get(bucket, key, version_id)
        except S3Error as exc:
            raise KeyError(f"{bucket}/{key}: {exc.code}") from exc

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete a key (adds a delete marker in a versioned bucket)."""
        self._store.delete(bucket, key)

    def serve_directory(self, root: str | os.PathLike[str]) -> int:
        """Serve ``root/<bucket>/<key>`` files: one bucket per sub-directory; returns the count.

        Example:
            >>> s3.serve_directory("/tmp/data")  # doctest: +SKIP
            3
        """
        count = 0
        with os.scandir(root) as entries:
            buckets = sorted(entry.path for entry in entries if entry.is_dir())
        for bucket_dir in buckets:
            name = os.path.basename(bucket_dir)
            self._store.create_bucket(name)
            for dirpath, _dirs, files in os.walk(bucket_dir):
                for file_name in files:
                    path = os.path.join(dirpath, file_name)
                    key = os.path.relpath(path, bucket_dir).replace(os.sep, "/")
                    self._store.put(StoredObject(name, key, FileBody(path)))
                    count += 1
        return count

    # ----------------------------------------------------------------- faults

    def add_fault(
        self,
        bucket: str | None,
        key: str | None,
        fault: Fault,
        *,
        method: Method | None = None,
        ranged: bool | None = None,
        range_start: int | None = None,
        min_range_start: int | None = None,
    ) -> FaultRule:
        """Attach a fault to the requests a rule matches; returns the rule (see ``fired``).

        Args:
            bucket: bucket, or None for every bucket.
            key: key, or None for every key (ignored with ``method="LIST"``).
            fault: what goes wrong, and for how many matching requests.
            method: ``"GET"``, ``"HEAD"``, ``"LIST"`` (ListObjectsV2) or None (GET and HEAD).
            ranged: True = only requests with a Range header, False = only without.
            range_start: only ranged requests starting at this byte.
            min_range_start: only ranged requests starting at or after this byte.

        Returns:
            The rule; ``rule.matched`` / ``rule.fired`` count requests.

        Example:
            >>> s3.add_fault("b", "k", Fault.reset(at_fraction=0.5), method="GET",
            ...              range_start=8 * 2**20)  # doctest: +SKIP
        """
        rule = FaultRule(
            fault=fault,
            bucket=bucket,
            key=key,
            method=method,
            ranged=ranged,
            range_start=range_start,
            min_range_start=min_range_start,
        )
        with self._engine.lock:
            self._engine.rules.append(rule)
        return rule

    def add_list_fault(self, bucket: str | None, fault: Fault) -> FaultRule:
        """Attach a fault to ListObjectsV2 pages of a bucket (``skip`` counts pages).

        Example:
            >>> s3.add_list_fault("b", Fault.status(500, times=1, skip=1))  # doctest: +SKIP
        """
        return self.add_fault(bucket, None, fault, method="LIST")

    def refuse_connections(self, count: int, *, rst: bool = False) -> None:
        """Close the next ``count`` accepted connections before reading them.

        Example:
            >>> s3.refuse_connections(2, rst=True)  # doctest: +SKIP
        """
        with self._engine.lock:
            self._engine.refuse_remaining = count
            self._engine.refuse_rst = rst

    def close_connections(self) -> None:
        """Close every client connection with a FIN, as a server's keep-alive
        timeout closes idle ones, and keep listening. Meant for between
        downloads: a request under way is cut too.

        Example:
            >>> s3.close_connections()  # doctest: +SKIP
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the server is not running")

        async def close() -> None:
            for writer in list(self._engine.writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)

    def load_script(
        self, script: Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str]
    ) -> list[FaultRule]:
        """Add the rules of a JSON fault script (a path, or its parsed content).

        Example:
            >>> s3.load_script({"faults": [{"bucket": "b", "key": "k",
            ...     "fault": {"kind": "status", "status": 503, "times": 1}}]})  # doctest: +SKIP
        """
        rules, refuse = parse_script(script)
        with self._engine.lock:
            self._engine.rules.extend(rules)
            if refuse:
                self._engine.refuse_remaining += refuse
        return rules

    def clear_faults(self) -> None:
        """Remove every fault rule and pending connection refusal."""
        with self._engine.lock:
            self._engine.rules.clear()
            self._engine.refuse_remaining = 0

    @property
    def rules(self) -> list[FaultRule]:
        """The fault rules, in matching order (a copy of the list)."""
        with self._engine.lock:
            return list(self._engine.rules)

    # ----------------------------------------------------------------- observation

    @property
    def requests(self) -> list[RequestRecord]:
        """Completed requests, oldest first (a snapshot)."""
        with self._engine.lock:
            return list(self._engine.records)

    @property
    def started_requests(self) -> int:
        """Requests received so far, including those not yet ended (which
        :attr:`requests` lists only once they end)."""
        with self._engine.lock:
            return self._engine.started

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RequestRecord]:
        """Block until at least ``count`` requests are recorded; TimeoutError otherwise.

        Example:
            >>> s3.wait_for_requests(1)[0].outcome  # doctest: +SKIP
            'complete'
        """
        with self._engine.changed:
            if not self._engine.changed.wait_for(
                lambda: len(self._engine.records) >= count, timeout
            ):
                got = len(self._engine.records)
                raise TimeoutError(f"{got} of {count} requests after {timeout} s")
            return list(self._engine.records)

    def bytes_sent(self, bucket: str, key: str) -> int:
        """Body bytes sent so far for a key (all requests, faulted ones included)."""
        with self._engine.lock:
            return self._engine.sent.get((bucket, key), 0)

    @property
    def refused_connections(self) -> int:
        """Connections closed by :meth:`refuse_connections` so far."""
        with self._engine.lock:
            return self._engine.refused

    @property
    def errors(self) -> list[str]:
        """Internal server errors (tracebacks); empty unless the server itself is buggy."""
        with self._engine.lock:
            return list(self._engine.errors)

    def reset_log(self) -> None:
        """Forget recorded requests and byte counts (rule counters are kept)."""
        with self._engine.lock:
            self._engine.records.clear()
            self._engine.sent.clear()
            self._engine.refused = 0
