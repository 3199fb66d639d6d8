"""What every GET response tells before its body: status, headers, range."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .._errors import ProtocolError

#: ``bytes 0-9/3000`` (RFC 9110), and the variants stores send: any case,
#: ``=`` for the space (older Ceph RGW), spaces around the numbers.
_CONTENT_RANGE = re.compile(r"^\s*bytes[\s=]\s*(\d+)\s*-\s*(\d+)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


def quoted_etag(etag: str | None) -> str | None:
    """``etag`` in the quoted form of RFC 9110 (``"abc"``, ``W/"abc"``).

    AWS quotes ETags everywhere; some S3-compatible stores do not (in
    listings, or in headers too), and S3 Inventory never does. One form
    makes ETags from a listing, a HEAD and a GET comparable, and is what
    ``If-Match`` wants.

    Example:
        >>> quoted_etag("abc"), quoted_etag('"abc"'), quoted_etag('W/"x"'), quoted_etag("")
        ('"abc"', '"abc"', 'W/"x"', None)
    """
    if not etag:
        return None
    etag = etag.strip()
    if etag.startswith(('"', "W/")):
        return etag
    return f'"{etag}"'


class ResponseHead:
    """The status and headers of a GET answer whose status is 200 or 206.

    Attributes:
        status: 200 or 206.
        headers: the response headers (case-insensitive).
        content_range: ``(first, last, total)`` from a 206's Content-Range;
            ``total`` is None when the server sent ``*``.
    """

    __slots__ = ("_source", "_span", "content_range", "headers", "status")

    def __init__(
        self, status: int, headers: Mapping[str, str], source: str, span: tuple[int, int] | None
    ) -> None:
        self._source = source
        self._span = span
        self.status = status
        self.headers = headers
        self.content_range: tuple[int, int, int | None] | None = None
        if status == 206:
            match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
            if match is None:
                raise ProtocolError(
                    f"206 with a missing or malformed Content-Range "
                    f"{headers.get('Content-Range')!r}",
                    source=source,
                    range=span,
                )
            total = None if match.group(3) == "*" else int(match.group(3))
            self.content_range = (int(match.group(1)), int(match.group(2)), total)

    @property
    def etag(self) -> str | None:
        return quoted_etag(self.headers.get("ETag"))

    @property
    def version_id(self) -> str | None:
        return self.headers.get("x-amz-version-id")

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None
