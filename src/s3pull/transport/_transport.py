"""The transport: HEAD, GET and ListObjectsV2, over one seam and two HTTP clients.

Callers say what they need: a HEAD, a listing page, or a GET whose body is
delivered chunk by chunk, either into a file at its offsets or as an
in-order stream (``ordered``). Which HTTP client serves it is decided here
alone (:meth:`Transport.get`, by the rule beside ``THREADED_BODY_ABOVE``):
the standard library's ``http.client`` on worker threads (``_blocking``),
for bulk bytes that should never pass through the event loop, or the
loop's own HTTP/1.1 over asyncio's transports (``_loop``) for small bodies
and ordered streams, whose per-request cost is lower. Both answer with one
:class:`Response` interface (``_backend``) and translate their own errors.
The transport also hides addressing, signing, proxies, region redirects
and the one-time credential refresh, and turns every failed answer into an
s3pull error (``_translate``). It never retries: retry policy lives in
planning, the driver in scheduling.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from .._config import SOCKET_READ_SIZE, KiB, MiB, TransferConfig
from .._errors import CredentialsError, ProtocolError, S3PullError
from .._events import Events
from .._results import ObjectInfo
from .._source import HttpSource, S3Source, Source
from ._backend import Ask, Backend, Response, TLSContext
from ._listing import ListCursor, ListPage, list_query, parse_list_page
from ._loop import LoopBackend
from ._proxies import Proxy, env_proxy
from ._response import ResponseHead, quoted_etag
from ._s3 import S3Endpoint
from ._translate import error_from_response

if TYPE_CHECKING:
    from ._blocking import BlockingPool

CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")
#: (algorithm, the header that carries it), looked up in every answer.
_CHECKSUM_HEADERS = tuple((a, f"x-amz-checksum-{a.lower()}") for a in CHECKSUM_ALGORITHMS)
#: How much of an error body we read to find the S3 <Code>; S3 errors are tiny.
_ERROR_BODY_LIMIT = 64 * 1024
#: A page of 1000 keys of 1024 bytes, escaped, is well under this.
_LIST_BODY_LIMIT = 16 * 1024 * 1024
#: What stays as it is in a URL: RFC 3986's reserved characters and the %
#: of escapes already there (letters, digits and "-._~" always stay).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
#: What a small object's GET may hold beyond its body: its answer's head
#: (S3's are ~0.5-1.5 KiB; a larger one only pauses the socket once more).
_HEAD_ROOM = 16 * KiB
#: Not looked up yet (a proxy of None means: go direct).
_UNKNOWN = Proxy("", 0)
_REFRESHABLE_CODES = frozenset({"ExpiredToken", "TokenRefreshRequired", "InvalidToken"})
#: A GET of a whole object into a file is read on the event loop when the
#: object is known to be no larger than this, on a worker thread otherwise
#: (and always for ranged parts): a request on the loop costs it less than
#: a thread's hand-offs do, its body path more per byte. Measured
#: (bench/PROFILE.md): the loop ahead up to 1 MiB, threads from 2 MiB on.
#: An object of unknown size is taken to be like the last one of unknown
#: size: see :meth:`Transport._backend_for`.
THREADED_BODY_ABOVE = 1 * MiB


def object_info(
    source: Source, headers: Mapping[str, str], size: int, *, is_s3: bool
) -> ObjectInfo:
    """Build :class:`ObjectInfo` from HEAD or GET response headers."""
    modified = headers.get("Last-Modified")
    last_modified = _http_date(modified) if modified is not None else None
    checksums = {
        algorithm: headers[header] for algorithm, header in _CHECKSUM_HEADERS if header in headers
    }
    encryption = headers.get("x-amz-server-side-encryption")
    if "x-amz-server-side-encryption-customer-algorithm" in headers:
        encryption = "SSE-C"
    return ObjectInfo(
        source=source.shown,
        size=size,
        etag=quoted_etag(headers.get("ETag")),
        version_id=headers.get("x-amz-version-id"),
        last_modified=last_modified,
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        checksums=checksums,
        checksum_type=headers.get("x-amz-checksum-type"),
        encryption=encryption,
        is_s3=is_s3 or "x-amz-request-id" in headers,
    )


@functools.lru_cache(maxsize=256)
def _http_date(text: str) -> datetime.datetime | None:
    """A ``Last-Modified`` date, or None if it is not one. Cached: objects
    written together share their second, and a batch of small objects
    parses one per GET (``email.utils``: 3 us a date, warm)."""
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


class Transport:
    """HEAD and GET for S3 and HTTP sources over one connection pool.

    Args:
        config: timeouts, pool size and read buffer come from here.
        s3: the S3 endpoint for ``s3://`` sources.
        events: told each request's answer (``on_request``), if anyone listens.
    """

    def __init__(
        self, config: TransferConfig, s3: S3Endpoint, events: Events | None = None
    ) -> None:
        self.config = config
        self.s3 = s3
        self.events = events
        self._loop: LoopBackend | None = None
        self._tls = TLSContext()
        self._threads: BlockingPool | None = None
        #: Whether the last whole-object GET of unknown size brought at most
        #: ``THREADED_BODY_ABOVE`` bytes (the guess for the next one).
        self._unknown_were_small = False
        self._proxies: dict[tuple[str, str], Proxy | None] = {}
        self._s3_headers, self._object_headers = _s3_headers(config)

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy for ``url``'s origin from ``HTTP(S)_PROXY`` / ``NO_PROXY``,
        as boto3 users expect; looked up once per origin (``_proxies``)."""
        scheme, _, rest = url.partition("://")
        origin = (scheme, rest.partition("/")[0])  # no urlsplit per request
        proxy = self._proxies.get(origin, _UNKNOWN)
        if proxy is _UNKNOWN:
            parts = urlsplit(url)
            proxy = self._proxies[origin] = env_proxy(parts.scheme, parts.hostname or "")
        return proxy

    def _get_loop(self) -> LoopBackend:
        if self._loop is None:
            self._loop = LoopBackend(self.config, self._tls)
        return self._loop

    def _get_threads(self) -> BlockingPool:
        if self._threads is None:
            # Imported when first used: http.client and its email parser are
            # ~10 ms of a process's start, and a batch of small objects (a
            # pool worker's) never reads a body on the threads.
            from ._blocking import BlockingPool

            self._threads = BlockingPool(connections=self.config.max_connections, tls=self._tls)
        return self._threads

    def _backend_for(self, *, ordered: bool, ranged: bool, expect: int | None) -> Backend:
        """The HTTP client for a GET: the loop's own for an ordered stream
        and for a whole object known to be small (``THREADED_BODY_ABOVE``);
        worker threads for every other body, which goes into a file.

        A whole object of unknown size (``cp s3://b/k``, a key list) is
        guessed to be like the last such object: small if it was. The first
        one goes to the threads, whose body path is the faster for a large
        object; a key list of small objects then takes the loop's cheaper
        request for all but the first, as a listing does. See
        bench/PROFILE.md ("Key lists"). A wrong guess costs speed only:
        either client reads any body correctly.
        """
        if ordered or (not ranged and expect is not None and expect <= THREADED_BODY_ABOVE):
            return self._get_loop()
        if not ranged and expect is None and self._unknown_were_small:
            return self._get_loop()
        return self._get_threads()

    def _learn_size(self, response: Response) -> None:
        """Remember whether a whole object of unknown size turned out small."""
        size = response.content_length
        if response.content_range is not None:
            size = response.content_range[2]
        self._unknown_were_small = size is not None and size <= THREADED_BODY_ABOVE

    async def close(self) -> None:
        if self._loop is not None:
            await self._loop.close()
        if self._threads is not None:
            self._threads.close()
            self._threads = None

    async def head(self, source: Source) -> ObjectInfo:
        """What the store says about ``source``, without its body.

        S3 sources get a HEAD with checksums asked for. HTTP sources (often
        presigned for GET only) get a GET of their first byte instead. Both
        go from a worker thread, whose connection the download's ranged GETs
        then reuse.
        """
        threads = self._get_threads()
        if isinstance(source, HttpSource):
            try:
                async with self._get(threads, source, 0, 0) as response:
                    return self.info_from_response(source, response)
            except ProtocolError as exc:
                if exc.status != 416:
                    raise
            # 416 for byte 0: the object is empty. A plain GET says so.
            async with self._get(threads, source) as response:
                return self.info_from_response(source, response)
        headers = {"x-amz-checksum-mode": "ENABLED"}
        async with self._exchange(threads, "HEAD", source, headers, None, None) as raw:
            length = raw.headers.get("Content-Length", "")
            if not length.isdigit():
                raise ProtocolError("HEAD without a Content-Length", source=source.redacted)
            return object_info(source, raw.headers, int(length), is_s3=True)

    def info_from_response(self, source: Source, response: ResponseHead) -> ObjectInfo:
        """Object facts from a GET response (its size from Content-Range or Content-Length)."""
        if response.content_range is not None and response.content_range[2] is not None:
            size = response.content_range[2]
        elif response.status == 200 and response.content_length is not None:
            size = response.content_length
        else:
            raise ProtocolError(
                "the response tells neither Content-Range nor Content-Length",
                source=source.redacted,
            )
        return object_info(source, response.headers, size, is_s3=isinstance(source, S3Source))

    def get(
        self,
        source: Source,
        first: int | None = None,
        last: int | None = None,
        *,
        if_match: str | None = None,
        checksum_mode: bool = False,
        ordered: bool = False,
        expect: int | None = None,
    ) -> AbstractAsyncContextManager[Response]:
        """GET ``source``, bytes ``first..last`` inclusive (the whole object if None).

        Args:
            source: what to get.
            first: the first byte wanted (None: the whole object).
            last: the last byte wanted (None: to the end).
            if_match: the ETag the object must still have.
            checksum_mode: ask for the object's checksums.
            ordered: the body feeds an in-order stream, on the event loop;
                otherwise it goes into a file at its offsets, and its
                ``consume`` may run on a worker thread.
            expect: the body's size, when it is known before the answer
                (a listed object's).

        ``async with`` it for a :class:`Response` whose status is 200 or 206;
        any other answer raises the translated error. The caller checks
        Content-Range.
        """
        ranged = first is not None
        backend = self._backend_for(ordered=ordered, ranged=ranged, expect=expect)
        # A small whole object's answer is held to its size (whole_get_cost).
        hold = self._hold(expect) if not ranged and expect is not None else None
        answer = self._get(
            backend, source, first, last, if_match=if_match, checksum_mode=checksum_mode, hold=hold
        )
        if not ranged and expect is None:
            answer.learn = self._learn_size
        return answer

    def _get(
        self,
        backend: Backend,
        source: Source,
        first: int | None = None,
        last: int | None = None,
        *,
        if_match: str | None = None,
        checksum_mode: bool = False,
        hold: int | None = None,
    ) -> _Answer:
        headers, span = _get_headers(first, last, if_match, checksum_mode)
        return self._exchange(backend, "GET", source, headers, span, None, hold=hold)

    def whole_get_cost(self, expect: int | None) -> int:
        """What the memory budget is charged for a whole GET of an object of
        ``expect`` bytes (None: not known), the most it may hold.

        One read on the loop (up to ``THREADED_BODY_ABOVE``) pauses its
        socket once more than ``min(expect, read_buffer)`` bytes and 16 KiB
        for the answer's head wait unread (the ``hold`` of its request), so
        it holds that plus one socket read at most: 288 KiB for a 16 KiB
        object, where ``stream_cost`` is 768 KiB, so that the default budget
        admits the 128 small GETs a batch runs at once. Any other GET is
        charged ``stream_cost``.
        """
        if expect is None or expect > THREADED_BODY_ABOVE:
            return self.config.stream_cost
        return min(self.config.stream_cost, self._hold(expect) + SOCKET_READ_SIZE)

    def _hold(self, expect: int) -> int:
        """The body and room for the answer's head: a socket paused and
        resumed for every small object cost two ``epoll_ctl`` calls and ~7 %
        of the loop (py-spy, 20,000 x 16 KiB)."""
        return min(expect, self.config.read_buffer) + _HEAD_ROOM

    async def list_page(self, bucket: str, prefix: str, token: ListCursor | None) -> ListPage:
        """One ListObjectsV2 page of the keys under ``prefix`` (``token``: where
        it starts, the ``next_token`` of the page before)."""
        source = S3Source(bucket, "")
        query = list_query(prefix, token)
        # On the loop: a page is one request and a few hundred KB, read
        # while the batch's GETs go on; no thread hand-off for it.
        async with self._exchange(self._get_loop(), "GET", source, {}, None, query) as raw:
            body = await raw.read_upto(_LIST_BODY_LIMIT + 1)
            if len(body) > _LIST_BODY_LIMIT:
                raise ProtocolError("a listing page larger than 16 MiB", source=source.redacted)
        return parse_list_page(body, source=f"s3://{bucket}/{prefix}")

    def _exchange(
        self,
        backend: Backend,
        method: str,
        source: Source,
        headers: dict[str, str],
        span: tuple[int, int] | None,
        query: dict[str, str] | None,
        *,
        hold: int | None = None,
    ) -> _Answer:
        """``async with``: one request through ``backend``, its 2xx answer
        (released afterwards), or the translated error."""
        return _Answer(
            functools.partial(self._send, backend, method, source, headers, span, query, hold)
        )

    async def _send(
        self,
        backend: Backend,
        method: str,
        source: Source,
        headers: dict[str, str],
        span: tuple[int, int] | None,
        query: dict[str, str] | None,
        hold: int | None,
    ) -> Response:
        """Send one request through ``backend``, following an S3 region
        redirect and refreshing an expired token once; return a 2xx answer
        or raise the translated error."""
        redirected = refreshed = False
        # None unless someone listens: then no clock is read at all.
        events = self.events
        if events is not None and not events.request_subscribers:
            events = None
        while True:
            ask = await self._ask(method, source, headers, span, query, hold)
            if events is None:
                raw = await backend.send(ask)
            else:
                op = "LIST" if query is not None and "list-type" in query else method
                sent = time.perf_counter()
                try:
                    raw = await backend.send(ask)
                except S3PullError:
                    events.request(op, 0, time.perf_counter() - sent)
                    raise
                events.request(op, raw.status, time.perf_counter() - sent)
            if raw.status < 300:
                break
            error = await self._error(raw, source, span)
            region = raw.headers.get("x-amz-bucket-region")
            if (
                isinstance(source, S3Source)
                and region
                and raw.status in (301, 307, 400)
                and not redirected
                and self.s3.set_bucket_region(source.bucket, region)
            ):
                redirected = True  # the bucket lives elsewhere: ask there, once
                continue
            if (
                isinstance(error, CredentialsError)
                and isinstance(source, S3Source)
                and error.code in _REFRESHABLE_CODES
                and not refreshed
            ):
                refreshed = True
                await self.s3.refresh_credentials()
                continue
            raise error
        return raw

    async def _ask(
        self,
        method: str,
        source: Source,
        headers: dict[str, str],
        span: tuple[int, int] | None,
        query: dict[str, str] | None,
        hold: int | None = None,
    ) -> Ask:
        url, signed = await self._address(method, source, headers, query)
        timeouts = self.config.timeouts
        return Ask(
            method,
            url,
            signed,
            self.proxy_for(url),
            (timeouts.connect_s, timeouts.first_byte_s, timeouts.silence_s),
            follow_redirects=not isinstance(source, S3Source),
            where=(source.redacted, span),
            hold=hold,
        )

    async def _address(
        self, method: str, source: Source, headers: dict[str, str], query: dict[str, str] | None
    ) -> tuple[str, dict[str, str]]:
        """The URL and the (signed) headers of a request for ``source``."""
        if not isinstance(source, S3Source):
            return requote(source.url), headers
        await self.s3.resolve()
        if source.version_id:
            query = {**(query or {}), "versionId": source.version_id}
        # Every request of an object has a key; a listing (the only bucket
        # request) has none, and S3 refuses SSE-C headers on it.
        extra = {**self._s3_headers, **self._object_headers} if source.key else self._s3_headers
        url = self.s3.url(source.bucket, source.key, query)
        return url, self.s3.signed_headers(method, url, {**headers, **extra}, source.bucket)

    async def _error(
        self, raw: Response, source: Source, span: tuple[int, int] | None
    ) -> S3PullError:
        body = b""
        try:
            body = await raw.read_upto(_ERROR_BODY_LIMIT)
        except S3PullError:
            body = b""  # the status alone still says what went wrong
        finally:
            raw.release()
        error = error_from_response(
            raw.status, raw.headers, body, source=source.redacted, range=span
        )
        if raw.status == 403 and isinstance(source, S3Source) and self.s3.anonymous:
            # Unsigned by choice (--no-sign-request) or for want of credentials:
            # say which, so nobody hunts for credentials that are there.
            if self.s3.sign:
                error.message += " (the request was unsigned: no AWS credentials were found)"
            else:
                error.message += " (the anonymous request was refused: --no-sign-request)"
        return error


class _Answer:
    """One request's answer as an ``async with``: sent on the way in,
    released on the way out. A plain class: two nested generator-based
    context managers per GET were ~10 us of the loop per small object.

    Attributes:
        learn: told the answer before the caller sees it (the size guess).
    """

    __slots__ = ("_response", "_send", "learn")

    def __init__(self, send: Callable[[], Awaitable[Response]]) -> None:
        self._send = send
        self._response: Response | None = None
        self.learn: Callable[[Response], None] | None = None

    async def __aenter__(self) -> Response:
        response = self._response = await self._send()
        if self.learn is not None:
            self.learn(response)
        return response

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._response is not None
        self._response.release()


def _s3_headers(config: TransferConfig) -> tuple[dict[str, str], dict[str, str]]:
    """What ``config`` adds to every S3 request, and to every object request."""
    every = {"x-amz-request-payer": config.request_payer} if config.request_payer else {}
    objects: dict[str, str] = {}
    if config.sse_c_key is not None:
        key = config.sse_c_key
        objects = {
            "x-amz-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
            "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(
                hashlib.md5(key).digest()
            ).decode(),
        }
    return every, objects


def _get_headers(
    first: int | None, last: int | None, if_match: str | None, checksum_mode: bool
) -> tuple[dict[str, str], tuple[int, int] | None]:
    """A GET's headers for bytes ``first..last``, and that span for errors."""
    headers: dict[str, str] = {"Accept-Encoding": "identity"}
    if first is not None:
        headers["Range"] = f"bytes={first}-" if last is None else f"bytes={first}-{last}"
    if if_match is not None:
        headers["If-Match"] = if_match
    if checksum_mode:
        headers["x-amz-checksum-mode"] = "ENABLED"
    span = (first, last) if first is not None and last is not None else None
    return headers, span


def requote(url: str) -> str:
    """``url`` with spaces, control and non-ASCII characters percent-encoded
    (as UTF-8) and its escapes kept, as browsers and requests send such a
    URL; no HTTP client may put them on the wire as they are.

    Example:
        >>> requote("https://h/a b/é.txt?X-Amz-Signature=ab%2Fc")
        'https://h/a%20b/%C3%A9.txt?X-Amz-Signature=ab%2Fc'
    """
    return quote(url, safe=_URL_SAFE)
