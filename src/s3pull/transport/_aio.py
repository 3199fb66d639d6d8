"""aiohttp's side of the transport: small bodies and ordered streams.

Its bodies are read on the event loop, a ``bytes`` per socket chunk: cheaper
per request than a worker thread's hand-offs, dearer per byte
(``_blocking`` says how much). Imported on first use: its import (~0.1 s, a
third of s3pull's start-up, 0.05 s of it the two SSL contexts aiohttp
builds) is not paid by a run that never needs it, such as one large
download or a batch of objects over 1 MiB, whose listings, HEADs and GETs go
through worker threads. The transport imports it on a worker thread
(``Transport._import_aio``), so that the event loop keeps running meanwhile.
aiohttp's exceptions are translated here (:func:`translate`), and only here.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from typing import Any

import aiohttp
from yarl import URL

from .._config import TransferConfig
from .._errors import NetworkError, ProtocolError, S3PullError, TimeoutError
from ._backend import Ask, Consume, Pace, Response
from ._translate import error_from_exception, first_line, permanent_connect_error

#: What a request or a body read through aiohttp may raise, before translation.
ERRORS = (builtins.TimeoutError, OSError, aiohttp.ClientError)


class AioResponse(Response):
    """An answer read through aiohttp, on the event loop."""

    __slots__ = ("_content", "_method", "_raw")

    def __init__(
        self, raw: aiohttp.ClientResponse, source: str, span: tuple[int, int] | None
    ) -> None:
        super().__init__(raw.status, raw.headers, source, span)
        self._raw = raw
        self._content = raw.content
        self._method = raw.method

    async def pump(self, consume: Consume, buffer_size: int, pace: Pace | None = None) -> None:
        """Every chunk as it arrives (aiohttp's, of up to ``read_buffer``
        bytes: ``buffer_size`` is the session's), on the event loop."""
        read = self._content.readany
        clock = time.monotonic
        while True:
            before = clock()
            try:
                data = await read()
            except ERRORS as exc:
                # Translated here, where it happens, so the caller still knows
                # how far the body got and can resume from there.
                raise translate(exc, source=self._source, range=self._span) from exc
            if not data:
                return
            wait = clock() - before
            if pace is not None:
                await pace.wait(len(data))
            consume(data, wait)

    async def read_upto(self, limit: int) -> bytes:
        if self._method == "HEAD":
            return b""
        body = bytearray()
        try:
            while len(body) <= limit and (chunk := await self._content.readany()):
                body += chunk
        except ERRORS as exc:
            raise translate(exc, source=self._source, range=self._span) from exc
        return bytes(body)

    def release(self) -> None:
        self._raw.release()


class AioBackend:
    """aiohttp's connection pool behind the :class:`Backend` interface.

    Args:
        config: pool size, read buffer and timeouts.
    """

    def __init__(self, config: TransferConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = _open_session(self._config)
        return self._session

    async def send(self, ask: Ask) -> AioResponse:
        session = self._get_session()
        proxy = ask.proxy
        auth = None
        if proxy is not None and proxy.username is not None:
            auth = aiohttp.BasicAuth(proxy.username, proxy.password or "")
        source, span = ask.where
        try:
            async with asyncio.timeout(ask.timeouts[1]):
                raw = await session.request(
                    ask.method,
                    URL(ask.url, encoded=True),
                    headers=ask.headers,
                    allow_redirects=ask.follow_redirects,
                    proxy=proxy.url if proxy is not None else None,
                    proxy_auth=auth,
                )
        except ERRORS as exc:
            raise translate(exc, source=source, range=span) from exc
        except ValueError as exc:  # yarl / aiohttp reject malformed URLs this way
            raise ProtocolError(f"bad URL: {exc}", source=source) from exc
        try:
            return AioResponse(raw, source, span)
        except BaseException:
            raw.release()  # a 206 without a valid Content-Range
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _open_session(config: TransferConfig) -> aiohttp.ClientSession:
    timeouts = config.timeouts
    connector = aiohttp.TCPConnector(
        limit=config.max_connections, limit_per_host=0, ttl_dns_cache=300
    )
    session = aiohttp.ClientSession(
        connector=connector,
        # The body is stored byte for byte: a gzip object stays gzip.
        auto_decompress=False,
        read_bufsize=config.read_buffer,
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.silence_s
        ),
        skip_auto_headers=("Accept-Encoding",),
        # trust_env would cost two thread hops per request (a proxy lookup
        # and a ~/.netrc read); the transport resolves proxies once per origin.
        trust_env=False,
    )
    # aiohttp silently sends an idempotent request again when its connection
    # closes unanswered; s3pull's own retry policy does that, counted, backed
    # off and charged to the retry budget.
    session._retry_connection = False
    return session


def translate(
    exc: BaseException, *, source: str, range: tuple[int, int] | None = None
) -> S3PullError:
    """The error one of aiohttp's exceptions (or the OS's under it) means."""
    where: dict[str, Any] = {"source": source, "range": range}
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return TimeoutError(f"timed out: {exc or type(exc).__name__}", **where)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Its os_error is the socket's, the resolver's or the handshake's
        # own exception: classified as the worker threads' are.
        permanent = permanent_connect_error(exc.os_error, where)
        if permanent is not None:
            return permanent
    if isinstance(exc, aiohttp.ClientSSLError):
        return NetworkError(f"TLS failed: {first_line(exc)}", **where)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return NetworkError(f"the body ended early: {first_line(exc)}", **where)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return NetworkError("the server closed the connection", **where)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return NetworkError(f"cannot connect: {first_line(exc)}", **where)
    if isinstance(exc, aiohttp.ClientResponseError):
        # Garbage where an HTTP answer should be: a broken connection or proxy,
        # or junk left on a kept-alive connection. Worth another connection.
        # The message may quote raw body bytes: one short line of it at most.
        message = str(exc.message).splitlines()[0][:120].rstrip(": ") if exc.message else ""
        message = message or "unparsable"
        return NetworkError(f"malformed response: {message}", **where)
    if isinstance(exc, aiohttp.ClientError):
        return NetworkError(f"connection failed: {first_line(exc)}", **where)
    return error_from_exception(exc, source=source, range=range)
