"""One request and its (possibly broken) response: the fault pipeline.

Runs on the server's event loop; see ``_server.py`` for the order in which
faults apply.
"""

from __future__ import annotations

import asyncio
import email.utils
import fcntl
import socket
import struct
import termios
from typing import Any

from ._faults import CUT_KINDS, TERMINAL_KINDS, Fault
from ._http import Request, parse_range, response_head
from ._listing import error_xml, list_buckets_xml, list_objects_v2
from ._record import RequestRecord
from ._state import ServerState
from ._store import BytesBody, FileBody, GeneratedBody, S3Error, StoredObject

_XML = "application/xml"
_HASH_INLINE_LIMIT = 1 << 20  # hash bigger bodies in a worker thread, not on the loop
_RESET_FLUSH_TIMEOUT = 1.0


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _unsent_bytes(sock: Any) -> int:
    """Bytes the kernel has not yet had acknowledged (Linux SIOCOUTQ), 0 if unknown."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, AttributeError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


class Exchange:
    """One request and its (possibly broken) response."""

    def __init__(
        self,
        state: ServerState,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request_id: str,
    ) -> None:
        self.state = state
        self.request = request
        self.reader = reader
        self.writer = writer
        self.request_id = request_id
        self.connection = 0
        self.status = 0
        self.body_bytes = 0
        self.faults: list[Fault] = []
        self.outcome = "complete"
        self.recorded = False

    async def run(self) -> bool:
        """Serve the request; False when the connection must not be reused."""
        with self.state.lock:
            self.state.started += 1
        try:
            return await self._dispatch()
        except (ConnectionError, TimeoutError):
            self.outcome = "client_disconnected"
            raise
        except asyncio.CancelledError:
            self.outcome = "server_closed"
            raise
        except Exception:
            self.outcome = "error"
            raise
        finally:
            self._finish()

    def _finish(self) -> None:
        """Record the request, once.

        Called just *before* the last byte (or the FIN / RST) goes out, so a
        client that has read its whole response always finds it in the log.
        """
        if self.recorded:
            return
        self.recorded = True
        request = self.request
        self.state.record(
            RequestRecord(
                method=request.method,
                bucket=request.bucket,
                key=request.key,
                query=request.query,
                range_header=request.headers.get("range"),
                if_match=request.headers.get("if-match"),
                version_id=request.query.get("versionId"),
                status=self.status,
                body_bytes_sent=self.body_bytes,
                headers=request.headers,
                faults=tuple(fault.kind for fault in self.faults),
                outcome=self.outcome,
                connection=self.connection,
            )
        )

    async def _dispatch(self) -> bool:
        request = self.request
        store = self.state.store
        if request.method not in ("GET", "HEAD"):
            return await self._send_error(
                S3Error(501, "NotImplemented", f"{request.method} is not implemented here")
            )
        if not request.bucket:
            return await self._send_bytes(200, list_buckets_xml(store), _XML)
        if not request.key:
            return await self._bucket_request()
        return await self._object_request()

    async def _bucket_request(self) -> bool:
        request = self.request
        try:
            self.state.store.bucket(request.bucket)
        except S3Error as exc:
            return await self._send_error(exc)
        if request.is_head:
            return await self._send_bytes(200, b"", _XML)
        if "location" in request.query:
            xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint/>'
            return await self._send_bytes(200, xml, _XML)
        if request.query.get("list-type") != "2":
            return await self._send_error(
                S3Error(501, "NotImplemented", "only ListObjectsV2 (list-type=2) is implemented")
            )
        self.faults = self.state.match("LIST", request.bucket, "", None)
        done = await self._apply_pre_response_faults()
        if done is not None:
            return done
        repeat = any(fault.kind == "repeat_token" for fault in self.faults)
        try:
            xml = await asyncio.to_thread(
                list_objects_v2,
                self.state.store,
                request.bucket,
                request.query,
                repeat_token=repeat,
            )
        except S3Error as exc:
            return await self._send_error(exc)
        return await self._send_bytes(200, xml, _XML)

    async def _object_request(self) -> bool:
        request = self.request
        state = self.state
        version_id = request.query.get("versionId")
        range_header = request.headers.get("range")
        try:
            size: int | None = state.store.get(request.bucket, request.key, version_id).size
        except S3Error:
            size = None
        resolved = parse_range(range_header, size)
        if resolved == "unsatisfiable":  # still a ranged request: match on its first byte
            resolved = parse_range(range_header, None)
        range_start = resolved[0] if isinstance(resolved, tuple) else None
        self.faults = state.match(request.method, request.bucket, request.key, range_start)
        for fault in self.faults:
            if fault.kind == "replace":
                await asyncio.to_thread(state.replace_object, request.bucket, request.key, fault)
            elif fault.kind == "delete":
                state.store.delete(request.bucket, request.key)
        done = await self._apply_pre_response_faults()
        if done is not None:
            return done
        kinds = {fault.kind for fault in self.faults}
        want_checksum = request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        try:
            obj = state.store.get(request.bucket, request.key, version_id)
            if obj.needs_hashing:
                if obj.size > _HASH_INLINE_LIMIT:
                    await asyncio.to_thread(_hash, obj, want_checksum)
                else:
                    _hash(obj, want_checksum)
            if_match = request.headers.get("if-match")
            if if_match is not None and "ignore_if_match" not in kinds:
                tags = {tag.strip().strip('"') for tag in if_match.split(",")}
                if "*" not in tags and obj.etag not in tags:
                    raise S3Error(
                        412,
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                        Condition="If-Match",
                    )
            window = None if "ignore_range" in kinds else parse_range(range_header, obj.size)
            if window == "unsatisfiable":
                raise S3Error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    headers={"Content-Range": f"bytes */{obj.size}"},
                    RangeRequested=range_header or "",
                    ActualObjectSize=str(obj.size),
                )
        except S3Error as exc:
            return await self._send_error(exc)
        headers = {
            "Content-Type": obj.content_type,
            "Content-Length": "",
            "ETag": f'"{obj.etag}"',
            "Last-Modified": email.utils.formatdate(obj.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        if obj.content_encoding:
            headers["Content-Encoding"] = obj.content_encoding
        if obj.version_id:
            headers["x-amz-version-id"] = obj.version_id
        if obj.encryption:
            headers["x-amz-server-side-encryption"] = obj.encryption
        for name, value in obj.metadata.items():
            headers[f"x-amz-meta-{name}"] = value
        if isinstance(window, tuple):
            first, last = window
            status = 206
            if "missing_content_range" not in kinds:
                shift = sum(f.shift for f in self.faults if f.kind == "wrong_content_range")
                headers["Content-Range"] = f"bytes {first + shift}-{last + shift}/{obj.size}"
        else:
            first, last, status = 0, obj.size - 1, 200
            if want_checksum and obj.checksum_algorithm is not None and obj.checksum:
                headers[f"x-amz-checksum-{obj.checksum_algorithm.lower()}"] = obj.checksum
                headers["x-amz-checksum-type"] = obj.checksum_type
        headers["Content-Length"] = str(last + 1 - first)
        return await self._send(status, headers, obj.body, first, last + 1)

    # ----------------------------------------------------------------- faults

    async def _apply_pre_response_faults(self) -> bool | None:
        """Terminal faults (status, refuse, hang) and delays; None to go on serving."""
        for fault in self.faults:
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
        terminal = next((f for f in self.faults if f.kind in TERMINAL_KINDS), None)
        if terminal is None:
            return None
        if terminal.kind == "refuse":
            self.outcome = "refused"
            self._finish()
            if terminal.rst:
                abort_with_rst(self.writer)
            else:
                self.writer.close()
            return False
        if terminal.kind == "hang":
            self.outcome = "hung"
            await self._hold()
            return False
        headers = {"Retry-After": str(terminal.retry_after)} if terminal.retry_after else {}
        fields = {"Key": self.request.key} if self.request.key else {}
        error = S3Error(
            terminal.http_status,
            terminal.error_code,
            terminal.error_message,
            headers=headers,
            **fields,
        )
        return await self._send_error(error)

    async def _hold(self) -> None:
        """Keep the connection open, never answering, until the peer closes it."""
        await self.writer.drain()
        while await self.reader.read(1 << 16):
            pass

    async def _reset(self) -> None:
        """RST after the bytes already written have reached the peer (bounded wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _RESET_FLUSH_TIMEOUT
        transport = self.writer.transport
        sock = transport.get_extra_info("socket")
        while loop.time() < deadline and not transport.is_closing():
            if not transport.get_write_buffer_size() and not _unsent_bytes(sock):
                break
            await asyncio.sleep(0.001)
        self._finish()
        abort_with_rst(self.writer)

    # ----------------------------------------------------------------- responses

    async def _send_error(self, error: S3Error) -> bool:
        headers = {"Content-Type": _XML, **error.headers}
        if self.request.is_head:
            return await self._send(error.status, headers, None, 0, 0)
        body = error_xml(error, self.request_id)
        headers["Content-Length"] = str(len(body))
        return await self._send(error.status, headers, BytesBody(body), 0, len(body))

    async def _send_bytes(self, status: int, body: bytes, content_type: str) -> bool:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        return await self._send(status, headers, BytesBody(body), 0, len(body))

    async def _send(
        self,
        status: int,
        headers: dict[str, str],
        body: BytesBody | FileBody | GeneratedBody | None,
        start: int,
        end: int,
    ) -> bool:
        """Write head and body ``[start, end)``, applying the body faults that fired."""
        request = self.request
        if request.is_head:
            body, end = None, start
        head = response_head(status, headers, self.request_id, close=not request.keep_alive)
        self.status = status
        length = end - start
        cut = next((f for f in self.faults if f.kind in CUT_KINDS), None)
        extra = next((f for f in self.faults if f.kind == "extra_bytes"), None)
        limit = length
        if cut is not None:
            limit = 0 if cut.kind == "headers_only" else cut.position(length)
        clean = cut is None and extra is None  # the response ends normally
        if body is None or limit == 0:
            if clean:
                self._finish()
            self.writer.write(head)
        else:
            self.writer.write(head)
            await self._write_body(body, start, start + limit, length, finish=clean)
        if cut is not None:
            if cut.kind in ("headers_only", "stall"):
                self.outcome = "held"
                await self._hold()
            elif cut.kind == "reset":
                self.outcome = "reset"
                await self._reset()
            else:
                self.outcome = "truncated"
                await self.writer.drain()
                self._finish()
                self.writer.close()
            return False
        if extra is not None:
            self.outcome = "extra_bytes"
            self._count(len(extra.extra))
            self._finish()
            self.writer.write(extra.extra)
            await self.writer.drain()
            self.writer.close()
            return False
        await self.writer.drain()
        return request.keep_alive

    def _count(self, count: int) -> None:
        self.body_bytes += count
        self.state.add_sent(self.request.bucket, self.request.key, count)

    async def _write_body(
        self,
        body: BytesBody | FileBody | GeneratedBody,
        start: int,
        end: int,
        length: int,
        *,
        finish: bool,
    ) -> None:
        """Write ``body[start:end)``; with ``finish``, record the request before the last piece."""
        flip = next((f for f in self.faults if f.kind == "flip_byte"), None)
        drip = next((f for f in self.faults if f.kind == "drip"), None)
        flip_at = start + min(flip.position(length), length - 1) if flip and length else -1
        drip_from = start + drip.position(length) if drip else end
        writer = self.writer
        position = start
        if isinstance(body, FileBody) and flip is None and drip is None:
            # sendfile all but the last byte, which goes through write() like any last piece
            await self._sendfile(body, start, end - 1)
            position = end - 1
        while position < end:
            if position >= drip_from and drip is not None:
                stop = min(end, position + drip.chunk)
            else:
                stop = min(end, drip_from, position + self.state.chunk_size)
            data: bytes | bytearray | memoryview = body.read(position, stop)
            if position <= flip_at < stop:
                data = bytearray(data)
                data[flip_at - position] ^= 0xFF
            if writer.transport.is_closing():
                raise ConnectionResetError("client closed the connection")
            self._count(stop - position)
            if finish and stop == end:
                self._finish()
            writer.write(data)
            position = stop
            await writer.drain()
            if drip is not None and position > drip_from and position < end:
                await asyncio.sleep(drip.interval)

    async def _sendfile(self, body: FileBody, start: int, end: int) -> None:
        loop = asyncio.get_running_loop()
        step = 8 * self.state.chunk_size  # count progress even if the client leaves mid-way
        with body.open() as file:
            for offset in range(start, end, step):
                count = min(step, end - offset)
                sent = await loop.sendfile(self.writer.transport, file, offset, count)
                self._count(sent)


def _hash(obj: StoredObject, checksum: bool) -> None:
    """Compute (and cache) the ETag, and the checksum if the request wants it."""
    _ = obj.etag
    if checksum:
        _ = obj.checksum
