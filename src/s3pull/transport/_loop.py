"""HTTP/1.1 on the event loop, over asyncio's own transports: small bodies and ordered streams.

A whole small object is one request and one short answer: what it costs is
the client's per-request work, not its per-byte path. aiohttp's request took
~120 us of the loop per 16 KiB GET against the bench's nginx, of ~0.55 ms
that s3pull spends per object in all; this client takes ~35 us (bench/
PROFILE.md, "Small GETs on the loop's own protocol"), and its import is
nothing but the standard library's (aiohttp's was ~0.1 s of start-up). It
does no more than the transport asks of it:

* a keep-alive pool per origin, at most ``max_connections`` requests under
  way at once (the same rule as the worker threads' pool); an idle
  connection that the server closed, or that received bytes nobody asked
  for, is never used again;
* ``Content-Length``, ``chunked`` and read-to-close bodies; HEAD, 204 and
  304 answers have none;
* HTTP proxies (absolute-form for ``http://``, ``CONNECT`` for ``https://``),
  TLS with the system's CA store, redirects for plain HTTP sources;
* a timeout per phase: connecting, the answer's head, and every wait for
  more of the body (silence);
* back-pressure: the socket is paused once ``read_buffer`` bytes are
  waiting unread, so one stream holds no more than the budget charges it.

Bodies are handed to the caller a ``bytes`` per socket read, as they came,
with no copy. This module's own failures are translated beside it
(:func:`translate`); the OS's go to ``_translate``.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from .._config import TransferConfig
from .._errors import NetworkError, ProtocolError, S3PullError, TimeoutError
from ._backend import (
    MAX_REDIRECTS,
    REDIRECTS,
    Ask,
    Consume,
    Pace,
    Response,
    TLSContext,
    redirect_error,
)
from ._proxies import Proxy
from ._sigv4 import host_header
from ._translate import error_from_exception, first_line

#: A response head (status line and headers) larger than this is refused.
_MAX_HEAD = 64 * 1024
_NO_BODY = frozenset({204, 304})
_PORTS = {"http": 80, "https": 443}


class _Malformed(Exception):
    """Bytes where an HTTP answer should be: a broken server or proxy, or junk."""


class _Closed(Exception):
    """The server closed the connection before the answer was complete."""


class _BodyEnded(Exception):
    """The connection closed before the body's announced length."""


class _Silent(Exception):
    """No byte came within the phase's timeout."""


class Origin(NamedTuple):
    """Where a connection goes: the scheme, host and port of the URL, and
    the proxy in between (connections through different proxies differ)."""

    scheme: str
    host: str
    port: int
    proxy: Proxy | None


@functools.lru_cache(maxsize=256)
def _split_origin(scheme: str, netloc: str) -> tuple[str, int, str]:
    """(host, port, Host header) of ``scheme://netloc``; every request to
    an origin asks the same, so ``urlsplit`` runs once per origin."""
    parts = urlsplit(f"{scheme}://{netloc}")
    return parts.hostname or "", parts.port or _PORTS[scheme], host_header(parts)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time.

    What arrives is kept as the ``bytes`` the transport handed over; a
    reader waits for more with a timer, not a task.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, high_water: int) -> None:
        self._loop = loop
        #: Pause the socket once more than this waits unread (per request).
        self.high_water = high_water
        self.transport: asyncio.Transport | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False  # the server sent EOF, or the connection is lost
        self._error: BaseException | None = None
        #: Idle in the pool: any byte that arrives now is junk.
        self.idle = False
        self.broken = False

    # The transport's side.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.idle:
            self.broken = True  # nobody asked: never send a request after it
            self.close()
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self.high_water and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self.broken = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self.broken = True
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The reader's side.
    async def _wait(self, within: float) -> None:
        """Wait for more bytes (or the end) for at most ``within`` seconds."""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(within, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def read(self, limit: int, within: float) -> bytes:
        """What has arrived, up to ``limit`` bytes, waiting if nothing has;
        b"" once the server has closed the connection."""
        chunks = self._chunks
        while not chunks:
            if self._ended:
                return b""
            await self._wait(within)
        data = chunks.popleft()
        if len(data) > limit:
            chunks.appendleft(data[limit:])
            data = data[:limit]
        self._buffered -= len(data)
        if self._paused and self._buffered <= self.high_water and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def read_line(self, limit: int, within: float) -> bytes:
        """Up to and without the next CRLF (chunk sizes, trailers)."""
        return await self._read_through(b"\r\n", limit, within)

    async def read_head(self, within: float) -> bytes:
        """The status line and headers, without the blank line after them."""
        return await self._read_through(b"\r\n\r\n", _MAX_HEAD, within)

    async def _read_through(self, mark: bytes, limit: int, within: float) -> bytes:
        deadline = self._loop.time() + within
        chunks = self._chunks
        while True:
            if len(chunks) > 1:
                chunks = self._chunks = collections.deque((b"".join(chunks),))
            if chunks:
                data = chunks[0]
                end = data.find(mark)
                if end >= 0:
                    rest = data[end + len(mark) :]
                    if rest:
                        chunks[0] = rest
                    else:
                        chunks.popleft()
                    self._buffered -= end + len(mark)
                    return data[:end]
                if len(data) > limit:
                    raise _Malformed("the answer's head is too large")
            if self._ended:
                if self._error is not None:
                    raise self._error
                if chunks:
                    raise _Malformed("the connection closed in the middle of the answer's head")
                raise _Closed
            left = deadline - self._loop.time()
            if left <= 0:
                raise _Silent
            await self._wait(left)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        if self._ended or self.transport.is_closing():
            raise _Closed
        self.transport.write(data)

    def close(self) -> None:
        """Drop the connection now. Nothing is left to send when it is closed,
        and a TLS goodbye would need more turns of the loop (a loop that ends
        first leaves the socket behind, unclosed)."""
        self.broken = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        """Whether another request may follow: not closed, and nothing
        arrived beyond the answer (bytes past its Content-Length are junk
        that would be read as the next answer)."""
        return not self.broken and not self._chunks


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_Silent())


class LoopResponse(Response):
    """An answer read on the event loop; its body, by :meth:`pump`."""

    __slots__ = ("_chunk_left", "_chunked", "_connection", "_on_release", "_remaining", "_silence")

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str],
        connection: _Connection,
        *,
        method: str,
        silence: float,
        where: tuple[str, tuple[int, int] | None],
        on_release: Callable[[_Connection, bool], None],
    ) -> None:
        super().__init__(status, headers, *where)
        self._connection = connection
        self._silence = silence
        self._on_release: Callable[[_Connection, bool], None] | None = on_release
        self._chunked = False
        self._chunk_left = 0
        #: Body bytes still to come; None: to the connection's close.
        self._remaining: int | None
        if method == "HEAD" or status in _NO_BODY or 100 <= status < 200:
            self._remaining = 0
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            self._chunked = True
            self._remaining = None
        else:
            lengths = set(headers.getall("Content-Length", ()))
            if len(lengths) > 1:
                raise _Malformed(f"conflicting Content-Lengths {sorted(lengths)}")
            length = lengths.pop() if lengths else None
            if length is None:
                self._remaining = None
                connection.broken = True  # the end of the body is the end of the connection
            elif length.strip().isdigit():
                self._remaining = int(length)
            else:
                raise _Malformed(f"bad Content-Length {length[:40]!r}")
        if "close" in headers.get("Connection", "").lower():
            connection.broken = True

    async def pump(self, consume: Consume, buffer_size: int, pace: Pace | None = None) -> None:
        """Every chunk as it arrives (at most ``buffer_size`` bytes each), on the event loop."""
        clock = time.monotonic
        while True:
            before = clock()
            data = await self._next(buffer_size)
            if not data:
                return
            wait = clock() - before
            if pace is not None:
                await pace.wait(len(data))
            consume(data, wait)

    async def read_upto(self, limit: int) -> bytes:
        body = bytearray()
        while len(body) <= limit and (chunk := await self._next(limit + 1)):
            body += chunk
        return bytes(body)

    async def _next(self, limit: int) -> bytes:
        """The next piece of the body, b"" at its end; s3pull errors only."""
        try:
            if self._chunked:
                return await self._next_chunked(limit)
            remaining = self._remaining
            if remaining == 0:
                return b""
            data = await self._connection.read(
                limit if remaining is None else min(limit, remaining), self._silence
            )
            if remaining is not None:
                if not data:
                    raise _BodyEnded(f"{remaining} bytes short")
                self._remaining = remaining - len(data)
            return data
        except Exception as exc:
            self._connection.close()
            raise translate(exc, source=self._source, range=self._span) from exc

    async def _next_chunked(self, limit: int) -> bytes:
        connection, silence = self._connection, self._silence
        if self._remaining == 0:
            return b""
        if self._chunk_left == 0:
            line = await connection.read_line(1024, silence)
            size = line.split(b";", 1)[0].strip()
            try:
                self._chunk_left = int(size, 16)
            except ValueError:
                raise _Malformed(f"bad chunk size {size[:20]!r}") from None
            if self._chunk_left == 0:
                while await connection.read_line(_MAX_HEAD, silence):
                    pass  # trailers, up to the blank line
                self._remaining = 0
                return b""
        data = await connection.read(min(limit, self._chunk_left), silence)
        if not data:
            raise _BodyEnded("in the middle of a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and await connection.read_line(2, silence):
            raise _Malformed("no CRLF after a chunk")
        return data

    def release(self) -> None:
        """Give the connection back if its body was read to the end, else close it."""
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release(self._connection, self._remaining == 0 and self._connection.reusable)


class LoopBackend:
    """Keep-alive connections on the event loop, behind the :class:`Backend` interface.

    Args:
        config: pool size and read buffer (the back-pressure mark).
        tls: the TLS context for ``https://`` (the transport's, shared).
    """

    def __init__(self, config: TransferConfig, tls: TLSContext | None = None) -> None:
        self._connections = config.max_connections
        self._high_water = config.read_buffer
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False
        self._tls = tls or TLSContext()

    async def send(self, ask: Ask) -> LoopResponse:
        """Send ``ask``; return once the answer's head is in (redirects of
        plain HTTP sources followed). Raises s3pull errors only."""
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._send_once(ask)
            location = response.headers.get("Location")
            if not (ask.follow_redirects and response.status in REDIRECTS and location):
                return response
            response._connection.close()  # its body is not wanted
            response.release()
            ask = ask._replace(url=urljoin(ask.url, location))
            if urlsplit(ask.url).scheme not in _PORTS:
                raise redirect_error("redirected to a URL that is not HTTP(S)", ask)
        raise redirect_error(f"more than {MAX_REDIRECTS} redirects", ask)

    async def _send_once(self, ask: Ask) -> LoopResponse:
        source, span = ask.where
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._connections)
        await self._slots.acquire()
        connection: _Connection | None = None
        try:
            scheme, sep, rest = ask.url.partition("://")
            netloc, slash, path = rest.partition("/")
            if not sep or scheme not in _PORTS or not netloc:
                raise ProtocolError(f"bad URL: {ask.url[:200]!r}", source=source)
            host, port, host_header = _split_origin(scheme, netloc)
            origin = Origin(scheme, host, port, ask.proxy)
            connect_s, first_byte_s, silence_s = ask.timeouts
            connection = self._take(origin) or await self._connect(origin, connect_s)
            connection.high_water = ask.hold or self._high_water
            target = (slash + path).partition("#")[0] or "/"
            if ask.proxy is not None and scheme == "http":
                target = f"http://{netloc}{target}"  # a proxy is told the whole URL
            connection.send(_request(ask, target, host_header, scheme))
            status, headers = await _read_head(connection, first_byte_s)
            return LoopResponse(
                status,
                headers,
                connection,
                method=ask.method,
                silence=silence_s,
                where=ask.where,
                on_release=functools.partial(self._give_back, origin),
            )
        except BaseException as exc:
            if connection is not None:
                connection.close()
            self._slots.release()
            if isinstance(exc, S3PullError) or not isinstance(exc, Exception):
                raise  # cancelled, or already ours
            if isinstance(exc, ValueError) and not isinstance(exc, OSError):
                # A host or port the URL cannot have (a certificate error is both).
                raise ProtocolError(f"bad URL: {first_line(exc)}", source=source) from exc
            raise translate(exc, source=source, range=span) from exc

    async def _connect(self, origin: Origin, within: float) -> _Connection:
        loop = asyncio.get_running_loop()
        scheme, host, port, proxy = origin
        tls = self._tls() if scheme == "https" else None
        to_host, to_port = (proxy.host, proxy.port) if proxy is not None else (host, port)
        try:
            async with asyncio.timeout(within):
                if tls is not None and proxy is not None:
                    _, connection = await loop.create_connection(self._protocol, to_host, to_port)
                    try:
                        await _tunnel(connection, origin, within)
                        assert connection.transport is not None
                        secure = await loop.start_tls(
                            connection.transport, connection, tls, server_hostname=host
                        )
                    except BaseException:
                        connection.close()  # refused, timed out or a failed handshake
                        raise
                    assert isinstance(secure, asyncio.Transport)
                    connection.transport = secure
                else:
                    _, connection = await loop.create_connection(
                        self._protocol,
                        to_host,
                        to_port,
                        ssl=tls,
                        server_hostname=host if tls is not None else None,
                    )
        except builtins.TimeoutError as exc:  # asyncio.timeout's
            raise _Silent("connecting") from exc
        return connection

    def _protocol(self) -> _Connection:
        return _Connection(asyncio.get_running_loop(), self._high_water)

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.broken:
                connection.idle = False
                return connection
        return None

    def _give_back(self, origin: Origin, connection: _Connection, reusable: bool) -> None:
        assert self._slots is not None
        self._slots.release()
        if not reusable or self._closed:
            connection.close()
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._connections:
            connection.close()
            return
        connection.idle = True
        idle.append(connection)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _request(ask: Ask, target: str, host: str, scheme: str) -> bytes:
    """The request's bytes: request line and headers in one write."""
    lines = [f"{ask.method} {target} HTTP/1.1", f"Host: {host}"]
    proxy = ask.proxy
    if proxy is not None and scheme == "http" and proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    lines += [f"{name}: {value}" for name, value in ask.headers.items()]
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


async def _read_head(connection: _Connection, within: float) -> tuple[int, CIMultiDictProxy[str]]:
    """The status and headers of the next final answer (1xx skipped)."""
    while True:
        head = await connection.read_head(within)
        status, headers = _parse_head(head)
        if not 100 <= status < 200:
            return status, headers


def _parse_head(head: bytes) -> tuple[int, CIMultiDictProxy[str]]:
    lines = head.decode("latin-1").split("\r\n")  # one decode for the whole head
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise _Malformed(f"not an HTTP status line: {lines[0][:60]!r}")
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1].isspace() or name[0].isspace():
            raise _Malformed(f"not a header: {line[:60]!r}")
        fields.append((name, value.strip()))
    headers: CIMultiDict[str] = CIMultiDict(fields)
    if version == "HTTP/1.0" and "keep-alive" not in headers.get("Connection", "").lower():
        headers.add("Connection", "close")  # HTTP/1.0 closes unless it says otherwise
    return int(code), CIMultiDictProxy(headers)


async def _tunnel(connection: _Connection, origin: Origin, within: float) -> None:
    """Ask the proxy for a tunnel to ``origin`` (``CONNECT``), for TLS through it."""
    _, host, port, proxy = origin
    assert proxy is not None
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {where} HTTP/1.1", f"Host: {where}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    status, headers = await _read_head(connection, within)
    if status != 200:
        raise OSError(f"Tunnel connection failed: {status} (the proxy refused CONNECT {where})")
    if headers.get("Content-Length", "0") != "0":
        raise _Malformed("the proxy's CONNECT answer has a body")


def translate(
    exc: BaseException, *, source: str, range: tuple[int, int] | None = None
) -> S3PullError:
    """The error one of this module's exceptions (or the OS's under it) means."""
    where: dict[str, Any] = {"source": source, "range": range}
    if isinstance(exc, _Silent):
        what = f" {exc}" if str(exc) else ""
        return TimeoutError(f"timed out{what}: no answer within the timeout", **where)
    if isinstance(exc, _Closed):
        return NetworkError("the server closed the connection", **where)
    if isinstance(exc, _BodyEnded):
        return NetworkError(f"the body ended early: {exc}", **where)
    if isinstance(exc, _Malformed):
        return NetworkError(f"malformed response: {first_line(exc)[:120]}", **where)
    return error_from_exception(exc, source=source, range=range)
