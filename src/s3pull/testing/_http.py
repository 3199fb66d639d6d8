"""A minimal HTTP/1.1 request reader and response-head writer.

Only what an S3 client sends: a request line, headers, and an optional
``Content-Length`` body that is read and dropped. Chunked request bodies are
refused (501); a TLS handshake is answered 400 at once, as real plain-HTTP
servers do. Keep-alive is the default for HTTP/1.1; ``Connection: close``
and HTTP/1.0 without ``keep-alive`` close after the response.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

MAX_HEAD = 64 * 1024
_DISCARD_CHUNK = 1 << 16
#: The first byte of a TLS record that opens a handshake.
_TLS_HANDSHAKE = b"\x16"
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class BadRequest(Exception):
    """The request cannot be parsed; answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    """One parsed request. Header names are lower-cased; repeated headers are joined."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    bucket: str = ""
    key: str = ""
    keep_alive: bool = True

    @property
    def is_head(self) -> bool:
        return self.method == "HEAD"


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request head (and drop its body); None on a clean EOF between requests."""
    try:
        first = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        return None
    if first == _TLS_HANDSHAKE:
        # A TLS ClientHello holds no blank line to wait for: answer at once,
        # as nginx and http.server do, and the client's handshake fails on
        # our plain-HTTP answer as it would against a real server.
        raise BadRequest(400, "a TLS handshake on a plain-HTTP port")
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if (first + exc.partial).strip():
            raise BadRequest(400, "incomplete request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest(431, "request head too large") from exc
    # RFC 9112 2.2: a server ignores empty lines before the request line.
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, f"bad request line {lines[0]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, f"bad header line {line!r}")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    request = Request(method=method.upper(), target=target, version=version, headers=headers)
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        request.keep_alive = "keep-alive" in connection
    else:
        request.keep_alive = "close" not in connection
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest(501, "chunked request bodies are not supported")
    length = headers.get("content-length")
    if length:
        if not length.isdigit():
            raise BadRequest(400, "bad Content-Length")
        remaining = int(length)
        while remaining:
            remaining -= len(await reader.readexactly(min(remaining, _DISCARD_CHUNK)))
    _split_target(request)
    return request


def _split_target(request: Request) -> None:
    """Path-style S3 addressing: ``/bucket/key?query``; the key is percent-decoded verbatim."""
    target = request.target
    if target.startswith(("http://", "https://")):  # absolute-form (a proxy-style request)
        slash = target.find("/", target.find("//") + 2)
        target = target[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("?")
    request.path = path
    request.query = dict(parse_qsl(query, keep_blank_values=True))
    bucket, _, key = path.removeprefix("/").partition("/")
    request.bucket = unquote(bucket)
    # unquote, not unquote_plus: in a path "+" is a plus sign (S3 keys may contain it).
    request.key = unquote(key)


def parse_range(header: str | None, size: int | None) -> tuple[int, int] | str | None:
    """Resolve a Range header against ``size``.

    Returns ``None`` when there is no usable Range (absent, malformed or a
    multi-range: S3 then answers 200 with the whole object), ``"unsatisfiable"``
    for a range that must get 416, else ``(first, last)`` inclusive. With
    ``size`` None (object unknown) the first byte of an ``a-`` range is still
    reported as ``(a, -1)`` so faults can match on it.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if size is None:
        return (int(first_text), -1) if first_text else None
    if not first_text:  # bytes=-n: the last n bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # syntactically invalid: ignored, as S3 does
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


def response_head(status: int, headers: dict[str, str], request_id: str, close: bool) -> bytes:
    """Status line and headers, with Date, Server, request id and Connection added."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(f"x-amz-request-id: {request_id}")
    lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    lines.append("Server: s3pull-testing")
    if close:
        lines.append("Connection: close")
    lines.extend(("", ""))
    return "\r\n".join(lines).encode("latin-1", "replace")
