"""Response bodies read on worker threads, for the bulk of the bytes.

One event loop is one core. On it, a body path (a ``recv`` into a new
``bytes`` per socket chunk, then the caller's ``pwrite`` and CRC; aiohttp's,
measured, added a copy into its StreamReader) tops out near 550 MB/s on the 2-core benchmark
machine whatever the concurrency, with the loop thread at 100 %. Here a
worker thread reads the body straight into one reused buffer
(``recv_into``) and hands each chunk to the caller's ``consume`` on that
same thread, where it is written and checksummed. ``recv_into``, ``pwrite``
and the CRC all release the GIL, so the kernel's copies and the checksum run
on every core: 1 GiB in 16 ranges with CRC64NVME took 0.9 s and 1.3 CPU s
this way against 1.9 s and 1.9 CPU s through aiohttp (bench/PROFILE.md).

The HTTP/1.1 client is the standard library's ``http.client``: its
``readinto`` reads straight into the caller's buffer (urllib3's copies).
What it lacks is here: a thread-safe keep-alive pool that drops connections
the server closed while they were idle, HTTP proxies (absolute-form for
``http://``, ``CONNECT`` for ``https://``), a timeout per phase, redirects
for plain HTTP sources, and an ``abort`` the event loop can call to stop a
thread blocked in a read.

Only the sending, the reading and the translation of ``http.client``'s and
the socket's exceptions (:func:`translate`) happen here; the transport
signs, decides on redirects of S3 answers and retries nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urljoin, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from .._errors import NetworkError, ProtocolError, S3PullError
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

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: What sending a request or reading its answer may raise, before translation.
ERRORS = (TimeoutError, OSError, http.client.HTTPException)


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: int
    proxy: Proxy | None


class _HTTPResponse(http.client.HTTPResponse):
    """``readinto`` that returns what one socket read brings, as ``recv_into``
    does. The standard one waits until the buffer is full: a body that stops
    half-way would then lose the bytes that did arrive before the read
    timeout, and the retry could not resume after them."""

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.fp is None or self.chunked:
            return super().readinto(buffer)  # chunked: never for an S3 GET
        view = memoryview(buffer)
        if self.length is not None:
            view = view[: self.length]
        size = self.fp.readinto1(view) if view else 0
        if self.length is not None:
            self.length -= size
        if not size or self.length == 0:
            self.close()  # the end (of the length, or of a body read to the close)
        return size


class BlockingResponse(Response):
    """An answer read on worker threads; its body is read by :meth:`pump`."""

    __slots__ = ("_aborted", "_connection", "_on_release", "_origin", "_pool", "_raw", "_socket")

    def __init__(
        self,
        pool: BlockingPool,
        origin: _Origin,
        connection: http.client.HTTPConnection,
        sock: socket.socket,
        raw: http.client.HTTPResponse,
        where: tuple[str, tuple[int, int] | None],
    ) -> None:
        super().__init__(raw.status, CIMultiDictProxy(CIMultiDict(raw.getheaders())), *where)
        self._pool = pool
        self._origin = origin
        self._connection = connection
        # The connection forgets its socket when the answer says "close";
        # the body is still read from it.
        self._socket = sock
        self._raw = raw
        self._aborted = False
        #: Gives the pool's connection slot back (set once the answer is the caller's).
        self._on_release: Callable[[], None] | None = None

    async def pump(self, consume: Consume, buffer_size: int, pace: Pace | None = None) -> None:
        """Read the body to its end on a worker thread, into one reused
        buffer of ``buffer_size`` bytes.

        ``consume`` and ``pace.wait_blocking`` run on that thread. If the
        awaiting task is cancelled the connection is shut down and the
        thread is waited for, so ``consume`` never runs after this returns.
        """
        future = self._pool.executor.submit(self._pump, consume, buffer_size, pace)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self.abort()
            # Not started yet (every thread busy): it never will be. Running:
            # a blocked read returns at once after abort(), and at most one
            # more consume() of a chunk already read runs. Waiting for that
            # here, on the loop thread, is what keeps the caller's file safe.
            if not future.cancel():
                concurrent.futures.wait([future])
            raise

    def _pump(self, consume: Consume, buffer_size: int, pace: Pace | None) -> None:
        view = memoryview(bytearray(buffer_size))
        readinto = self._raw.readinto
        clock = time.monotonic
        aborted = self._is_aborted
        while not self._aborted:
            before = clock()
            try:
                size = readinto(view)
            except ERRORS as exc:
                raise translate(exc, source=self._source, range=self._span) from exc
            if not size:
                return
            wait = clock() - before
            if pace is not None:
                pace.wait_blocking(size, aborted)  # off the loop: this thread may sleep
            consume(view[:size], wait)

    def _is_aborted(self) -> bool:
        return self._aborted

    async def read_upto(self, limit: int) -> bytes:
        future = self._pool.executor.submit(self._raw.read, limit)
        try:
            return await asyncio.wrap_future(future)
        except ERRORS as exc:
            raise translate(exc, source=self._source, range=self._span) from exc

    def abort(self) -> None:
        """Stop a read blocked on another thread; the connection is not reused."""
        self._aborted = True
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing is blocked on it

    def release(self) -> None:
        """Give the connection back to the pool if its body was read to the
        end, else close it (unread bytes would corrupt the next answer)."""
        if self._on_release is not None:
            self._on_release()
            self._on_release = None
        raw = self._raw
        if not self._aborted and raw.length == 0 and not raw.will_close:
            # A HEAD's answer is complete unread; http.client must be told,
            # or it refuses the connection's next request.
            raw.close()
            self._pool.put(self._origin, self._connection)
        else:
            # Both: after a "Connection: close" answer the connection has
            # already let go of the socket, and only the answer holds it.
            raw.close()
            self._connection.close()


class _Cancel:
    """Lets the event loop stop a request that a worker thread is sending.

    The thread registers its socket before sending; ``cancel`` shuts that
    socket down, or makes the registration fail if it comes later, so a
    cancelled request is never sent after ``cancel`` returns.
    """

    __slots__ = ("_cancelled", "_lock", "_socket")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._cancelled = False

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._cancelled:
                raise ConnectionAbortedError("the request was cancelled")
            self._socket = sock

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._socket is not None:
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed already


class BlockingPool:
    """Keep-alive HTTP/1.1 connections per origin and the threads that use them.

    At most ``connections`` requests are under way at once, from the moment
    one is sent until its answer is released (body read or abandoned); more
    wait, on the event loop, as the loop's pool makes them wait. With a thread
    per connection, a body never waits for a thread to read it.

    Args:
        connections: requests in flight at once, and worker threads.
        tls: the TLS context for ``https://`` (the transport's, shared).
    """

    def __init__(self, *, connections: int, tls: TLSContext | None = None) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=connections, thread_name_prefix="s3pull-body"
        )
        self._connections = connections
        self._slots: asyncio.Semaphore | None = None
        self._max_idle = connections
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._tls = tls or TLSContext()

    async def send(self, ask: Ask) -> BlockingResponse:
        """Send ``ask`` on a worker thread; return once the answer's headers are in."""
        source, span = ask.where
        try:
            return await self._request_async(ask)
        except ERRORS as exc:
            raise translate(exc, source=source, range=span) from exc
        except ValueError as exc:  # http.client refuses a URL it cannot send this way
            raise ProtocolError(f"bad URL: {exc}", source=source) from exc

    async def _request_async(self, ask: Ask) -> BlockingResponse:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._connections)
        slots = self._slots
        await slots.acquire()
        loop = asyncio.get_running_loop()

        def free_slot() -> None:  # from any thread
            try:
                loop.call_soon_threadsafe(slots.release)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for a slot any more

        cancel = _Cancel()
        future = self.executor.submit(self._request, ask, cancel)
        try:
            response = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.cancel()
            # An answer that still comes (the headers were in) is nobody's;
            # the slot is free once it is closed or has failed.
            future.add_done_callback(_close_unclaimed)
            future.add_done_callback(lambda _: free_slot())
            raise
        except BaseException:
            slots.release()
            raise
        response._on_release = free_slot
        return response

    def _request(self, ask: Ask, cancel: _Cancel) -> BlockingResponse:
        for _ in range(MAX_REDIRECTS + 1):
            response = self._request_once(ask, cancel)
            location = response.headers.get("Location")
            if not (ask.follow_redirects and response.status in REDIRECTS and location):
                return response
            response.abort()  # its body is not wanted; neither is the connection
            response.release()
            ask = ask._replace(url=urljoin(ask.url, location))
            if urlsplit(ask.url).scheme not in ("http", "https"):
                raise redirect_error("redirected to a URL that is not HTTP(S)", ask)
        raise redirect_error(f"more than {MAX_REDIRECTS} redirects", ask)

    def _request_once(self, ask: Ask, cancel: _Cancel) -> BlockingResponse:
        url, headers, proxy = ask.url, ask.headers, ask.proxy
        connect_s, first_byte_s, read_s = ask.timeouts
        parts = urlsplit(url)
        scheme = parts.scheme
        origin = _Origin(scheme, parts.hostname or "", parts.port or _PORTS[scheme], proxy)
        connection = self._take(origin) or self._connect(origin, connect_s)
        try:
            if connection.sock is None:
                connection.connect()
            sock = connection.sock
            assert sock is not None
            cancel.watch(sock)
            sock.settimeout(first_byte_s)
            # A plain-HTTP request through a proxy names the whole URL.
            target = url if proxy is not None and scheme == "http" else _path(url)
            connection.putrequest(ask.method, target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", host_header(url))
            if proxy is not None and proxy.authorization and scheme == "http":
                connection.putheader("Proxy-Authorization", proxy.authorization)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            raw = connection.getresponse()
            sock.settimeout(read_s)
            return BlockingResponse(self, origin, connection, sock, raw, ask.where)
        except BaseException:
            connection.close()
            raise

    def _connect(self, origin: _Origin, timeout: float) -> http.client.HTTPConnection:
        scheme, host, port, proxy = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            via = (proxy.host, proxy.port) if proxy is not None else (host, port)
            connection = http.client.HTTPSConnection(*via, timeout=timeout, context=self._tls())
            if proxy is not None:
                tunnel_headers = (
                    {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                )
                connection.set_tunnel(host, port, headers=tunnel_headers)
        elif proxy is not None:
            connection = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.response_class = _HTTPResponse
        return connection

    def _take(self, origin: _Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()
                if _still_open(connection):
                    return connection
                connection.close()
        return None

    def put(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if not self._closed and len(idle) < self._max_idle:
                idle.append(connection)
                return
        connection.close()  # too many idle, or a late answer after close()

    def close(self) -> None:
        """Close every idle connection and let the threads end."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


_PORTS = {"http": 80, "https": 443}


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the
    server (or holds junk): either way it cannot carry another request."""
    sock = connection.sock
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def translate(
    exc: BaseException, *, source: str, range: tuple[int, int] | None = None
) -> S3PullError:
    """The error one of ``http.client``'s exceptions (or the OS's) means."""
    where: dict[str, Any] = {"source": source, "range": range}
    if isinstance(exc, http.client.RemoteDisconnected):
        return NetworkError("the server closed the connection", **where)
    if isinstance(exc, http.client.IncompleteRead):
        return NetworkError(f"the body ended early: {exc!r}"[:300], **where)
    if isinstance(exc, http.client.HTTPException):
        # A garbled status line or headers: junk on a kept-alive connection,
        # a broken proxy. Worth another connection.
        return NetworkError(f"malformed response: {first_line(exc)[:120]}", **where)
    return error_from_exception(exc, source=source, range=range)


def _close_unclaimed(future: concurrent.futures.Future[BlockingResponse]) -> None:
    if not future.cancelled() and future.exception() is None:
        response = future.result()
        response.abort()
        response.release()
