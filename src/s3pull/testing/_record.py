"""The request log entry."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RequestRecord:
    """One completed request, as the server saw it.

    Attributes:
        method: ``GET``, ``HEAD``... (``LIST`` is not used here: a listing is a GET
            with an empty ``key``).
        bucket, key: from the path, percent-decoded.
        query: the query parameters.
        range_header, if_match, version_id: the request's Range / If-Match / versionId.
        status: the status sent, or 0 when no response head was sent.
        body_bytes_sent: body bytes handed to the socket (extra bytes included).
        headers: the request headers (lower-case names).
        faults: the kinds of the faults that hit this request, in rule order.
        outcome: ``complete``, ``refused``, ``hung``, ``held``, ``reset``,
            ``truncated``, ``extra_bytes``, ``client_disconnected``,
            ``server_closed`` or ``bad_request``.
        connection: the connection number (requests on one keep-alive
            connection share it).

    Example:
        >>> [r.status for r in server.requests]  # doctest: +SKIP
        [503, 206]
    """

    method: str
    bucket: str
    key: str
    query: dict[str, str]
    range_header: str | None
    if_match: str | None
    version_id: str | None
    status: int
    body_bytes_sent: int
    headers: dict[str, str]
    faults: tuple[str, ...]
    outcome: str
    connection: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)
