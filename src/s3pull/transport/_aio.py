"""aiohttp's side of the transport: small GETs and ordered streams.

Imported on first use: its import (~0.1 s, a third of s3pull's start-up,
0.05 s of it the two SSL contexts aiohttp builds) is not paid by a run that
never needs it, such as one large download or a batch of objects over
1 MiB, whose listings, HEADs and GETs go through worker threads
(``_blocking``). The transport imports it on a worker thread
(``Transport._import_aio``), so that the event loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio

import aiohttp
from yarl import URL

from .._config import TransferConfig
from ._proxies import Proxy
from ._response import ResponseHead
from ._translate import error_from_exception

#: What aiohttp raises that is not an OSError or a TimeoutError.
ERRORS = (aiohttp.ClientError,)


class Response(ResponseHead):
    """An open GET response whose status is 200 or 206; read the body with :meth:`read`."""

    __slots__ = ("_content",)

    def __init__(
        self, response: aiohttp.ClientResponse, source: str, span: tuple[int, int] | None
    ) -> None:
        super().__init__(response.status, response.headers, source, span)
        self._content = response.content

    async def read(self) -> bytes:
        """The next body bytes as they arrive; ``b""`` at the end."""
        try:
            return await self._content.readany()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # Translated here, where it happens, so the caller still knows how
            # far the body got and can resume from there.
            raise error_from_exception(exc, source=self._source, range=self._span) from exc


def open_session(config: TransferConfig) -> aiohttp.ClientSession:
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


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    follow_redirects: bool,
    proxy: Proxy | None,
    first_byte_s: float,
) -> aiohttp.ClientResponse:
    """Send one request; raises aiohttp's and yarl's exceptions untranslated."""
    auth = None
    if proxy is not None and proxy.username is not None:
        auth = aiohttp.BasicAuth(proxy.username, proxy.password or "")
    async with asyncio.timeout(first_byte_s):
        return await session.request(
            method,
            URL(url, encoded=True),
            headers=headers,
            allow_redirects=follow_redirects,
            proxy=proxy.url if proxy is not None else None,
            proxy_auth=auth,
        )


async def read_upto(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body until its end, or until more than ``limit`` bytes are in (a
    caller that gets more than ``limit`` knows the body was too large)."""
    if response.method == "HEAD":
        return b""
    body = bytearray()
    while len(body) <= limit and (chunk := await response.content.readany()):
        body += chunk
    return bytes(body)
