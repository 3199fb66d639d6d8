"""What both HTTP clients offer the transport: one request in, one response out.

The transport sends every request through one of two backends: the
standard library's ``http.client`` on worker threads (``_blocking``) or
its own HTTP/1.1 on the event loop (``_loop``). Both take an :class:`Ask` and return a
:class:`Response`, whose body is delivered the same way whichever backend
reads it: :meth:`Response.pump` hands every chunk, as it arrives, to the
caller's ``consume``. Which thread that runs on is the backend's business; a
``consume`` must be fine on either (a ``pwrite`` and a CRC are). Each backend
translates its own exceptions into s3pull errors, beside its own code, so
nothing above it ever sees a protocol's or an ``http.client`` exception.
"""

from __future__ import annotations

import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple, Protocol

from .._errors import ProtocolError
from ._proxies import Proxy
from ._response import ResponseHead

#: Redirects followed for plain HTTP sources (as browsers and requests do).
MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: ``consume(chunk, waited)``: a body chunk (valid only until it returns: a
#: backend may reuse its buffer) and the seconds the read of it waited for
#: the network. What it raises ends :meth:`Response.pump` and is raised there.
Consume = Callable[[memoryview | bytes, float], None]


class Ask(NamedTuple):
    """One request (a GET or a HEAD) for a backend to send.

    Attributes:
        method: ``GET`` or ``HEAD``.
        url: the whole URL, query included.
        headers: the request's headers (signed), without Host.
        proxy: the proxy to go through, or None.
        timeouts: (connect, first byte, each body read) in seconds.
        follow_redirects: follow 3xx answers (plain HTTP sources), or return them (S3).
        where: the redacted source and range, for the errors of body reads.
        hold: the most bytes the answer may keep waiting unread before its
            socket is paused (None: the backend's read buffer); a backend that
            reads into a buffer of its own ignores it.
    """

    method: str
    url: str
    headers: dict[str, str]
    proxy: Proxy | None
    timeouts: tuple[float, float, float]
    follow_redirects: bool
    where: tuple[str, tuple[int, int] | None]
    hold: int | None = None


class Pace(Protocol):
    """Holds a body back between two reads (a bandwidth limit, a full window).

    Called after every read, with the size of the chunk it brought, before
    that chunk is consumed: :meth:`wait` by a backend that reads on the
    event loop, :meth:`wait_blocking` by one that reads on a worker thread.
    Either way the time spent here is not network wait: stall detection
    never sees it.
    """

    async def wait(self, size: int) -> None: ...

    def wait_blocking(self, size: int, stop: Callable[[], bool]) -> None:
        """Wait on a worker thread; return early once ``stop()`` says the
        response was aborted (its reader is being cancelled)."""
        ...


class Response(ResponseHead, ABC):
    """An answer whose headers have arrived, from either backend.

    Any status may be seen here (the transport turns errors into
    exceptions); a 206 without a valid Content-Range never gets this far.
    Its methods raise s3pull errors only.
    """

    __slots__ = ()

    @abstractmethod
    async def pump(self, consume: Consume, buffer_size: int, pace: Pace | None = None) -> None:
        """Read the body to its end, handing every chunk to ``consume``.

        ``buffer_size``: the largest chunk wanted (a worker thread's one
        buffer). If the awaiting task is cancelled, ``consume`` never runs
        after this returns: the caller may close its file at once.
        """

    @abstractmethod
    async def read_upto(self, limit: int) -> bytes:
        """The body until its end, or its first ``limit`` bytes or a little
        more (an error answer, a listing page: a caller that gets more than
        ``limit`` knows the body was too large)."""

    @abstractmethod
    def release(self) -> None:
        """Give the connection back if the body was read to its end, else close it."""


class Backend(Protocol):
    """One HTTP client: sends an :class:`Ask`, returns its :class:`Response`."""

    async def send(self, ask: Ask) -> Response:
        """Send ``ask``; return once the answer's headers are in. Raises s3pull errors only."""
        ...


def redirect_error(message: str, ask: Ask) -> ProtocolError:
    """Too many redirects, or one to elsewhere than HTTP(S): not transient,
    the same redirects would come again."""
    source, span = ask.where
    return ProtocolError(message, source=source, range=span)


class TLSContext:
    """The TLS context a transport's backends share: the system's CA store
    (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as they are at first use),
    host names checked. Made on first use (loading the CA store is ~20 ms),
    so that a run over plain HTTP never pays for it, and once for both
    backends."""

    __slots__ = ("_context",)

    def __init__(self) -> None:
        self._context: ssl.SSLContext | None = None

    def __call__(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context
