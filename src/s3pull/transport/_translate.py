"""Translation of HTTP answers and of the OS's exceptions into s3pull errors.

What a status, an S3 ``<Error>`` document, a socket, resolver or TLS failure
means is decided here, for both HTTP clients; each backend maps its own
library's exceptions beside its code (``_blocking.translate`` for
``http.client``, ``_loop.translate`` for the loop's client) and hands what is left, the
OS's errors, to :func:`error_from_exception`. Transient errors (worth
retrying) derive from :class:`TransientError`. A
failure to connect is transient (a refused or reset connection, a resolver
that timed out) unless it says that no retry can succeed: a host name that
does not exist, a certificate that does not verify, or a TLS handshake the
two sides cannot complete (``https://`` to a plain-HTTP port, no common
protocol version). Those fail at the first attempt, with one error.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from .._errors import (
    AccessDeniedError,
    CredentialsError,
    NetworkError,
    NotFoundError,
    ObjectChangedError,
    ProtocolError,
    S3PullError,
    ServerError,
    ThrottledError,
    TimeoutError,
    TransferError,
    TransientError,
)
from ._xml import NotXML, parse_xml

_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSecurity",
    }
)

#: OpenSSL reasons for a handshake that fails the same way every time: the
#: peer does not speak TLS on this port (``WRONG_VERSION_NUMBER``: its first
#: bytes were plain HTTP), or the two sides share no protocol version or
#: cipher, or the server does not know the name asked for. A reason that is
#: not here (an EOF or a bad record MAC mid-handshake) may be a broken
#: connection and stays transient.
_PERMANENT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "NO_SHARED_CIPHER",
        "TLSV1_UNRECOGNIZED_NAME",
    }
)

#: getaddrinfo's answers that the name does not exist (or has no address).
#: ``EAI_AGAIN`` (the resolver did not answer) stays transient.
_NO_SUCH_HOST = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None  # an HTTP date: rare for S3; the backoff still applies
    value = headers.get("x-amz-retry-after")  # milliseconds
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            return None
    return None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    source: str,
    range: tuple[int, int] | None = None,
) -> S3PullError:
    """The error an unexpected HTTP answer means. ``body`` is its first bytes."""
    code, detail = _code_and_message(body)
    where: dict[str, Any] = {"source": source, "range": range, "status": status, "code": code}
    what = f"{status} {code}" if code else f"HTTP {status}"
    text = f"{what}: {detail}" if detail else what

    error: S3PullError
    if status == 404:
        error = NotFoundError(f"not found ({text})", **where)
    elif code in _CREDENTIAL_CODES:
        error = CredentialsError(f"credentials rejected ({text})", **where)
    elif status == 403:
        if "expired" in detail.lower():
            error = AccessDeniedError(f"the URL has expired ({text})", **where)
        else:
            error = AccessDeniedError(f"access denied ({text})", **where)
    elif status == 412:
        error = ObjectChangedError(f"the object changed during the download ({text})", **where)
    elif status in (429, 503) or code in ("SlowDown", "Throttling", "RequestLimitExceeded"):
        error = ThrottledError(f"throttled ({text})", **where)
    elif status >= 500 or code in ("RequestTimeout", "InternalError"):
        error = ServerError(f"server error ({text})", **where)
    elif status == 416:
        error = ProtocolError(f"range not satisfiable ({text})", **where)
    else:
        error = TransferError(f"unexpected answer ({text})", **where)
    if isinstance(error, TransientError):
        error.retry_after = _retry_after(headers)
    return error


def _code_and_message(body: bytes) -> tuple[str | None, str]:
    """The ``<Code>`` and ``<Message>`` of an S3 ``<Error>`` document, in any
    XML namespace or none; (None, "") for a body that is not one (an HTML
    page from a proxy, nothing at all after a HEAD)."""
    try:
        root = parse_xml(body)
    except NotXML:
        return None, ""
    error = root if root.tag == "Error" else root.find("Error")
    if error is None:
        return None, ""
    code = " ".join((error.findtext("Code") or "").split())[:128] or None
    message = " ".join((error.findtext("Message") or "").split())[:512]
    return code, message


def error_from_exception(
    exc: BaseException,
    *,
    source: str,
    range: tuple[int, int] | None = None,
) -> S3PullError:
    """The error an exception raised while talking to the store means: a
    timeout, one of the OS's (socket, resolver, TLS), or anything else; the
    backends map their own library's exceptions first."""
    if isinstance(exc, S3PullError):
        return exc
    where: dict[str, Any] = {"source": source, "range": range}
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError(f"timed out: {exc or type(exc).__name__}", **where)
    permanent = permanent_connect_error(exc, where)
    if permanent is not None:
        return permanent
    if isinstance(exc, ConnectionError | OSError):
        return NetworkError(f"connection failed: {first_line(exc)}", **where)
    return TransferError(
        f"unexpected {type(exc).__name__}: {first_line(exc)}", source=source, range=range
    )


def permanent_connect_error(exc: BaseException, where: dict[str, Any]) -> S3PullError | None:
    """The error a connection failure no retry can fix means; None if a retry might."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A certificate that does not verify will not verify on a retry either.
        return TransferError(f"TLS failed: {first_line(exc)}", **where)
    reason = getattr(exc, "reason", None)  # None on an SSLError made in Python
    if isinstance(exc, ssl.SSLError) and reason in _PERMANENT_TLS_REASONS:
        hint = ""
        if reason == "WRONG_VERSION_NUMBER":
            hint = " (the server does not speak TLS on this port: is it an http:// one?)"
        return TransferError(f"TLS failed: {first_line(exc)}{hint}", **where)
    if isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_HOST:
        return TransferError(f"cannot resolve the host name: {first_line(exc)}", **where)
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
