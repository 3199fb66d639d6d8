"""Faults and the rules that decide which requests they hit.

A :class:`Fault` says *what* goes wrong (a 503, a reset at 50 %, a stall...)
and *how often* (``skip`` matching requests pass untouched, then ``times``
requests are hit, or every one when ``times`` is None). A :class:`FaultRule`
says *which* requests count as matching: bucket, key, method (``GET``,
``HEAD``, both, or ``LIST`` for ListObjectsV2) and range.

Each rule counts the requests it matches on its own, so "the 3rd GET of this
key" is ``Fault.x(skip=2, times=1)`` with ``method="GET"``, and several rules
can hit the same request (e.g. ``replace`` + ``ignore_if_match``).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

FaultKind = Literal[
    "status",
    "refuse",
    "hang",
    "headers_only",
    "stall",
    "drip",
    "reset",
    "truncate",
    "extra_bytes",
    "wrong_content_range",
    "missing_content_range",
    "ignore_range",
    "ignore_if_match",
    "replace",
    "delete",
    "flip_byte",
    "delay",
    "repeat_token",
]
FAULT_KINDS: Final[tuple[str, ...]] = FaultKind.__args__  # type: ignore[attr-defined]

# Kinds that end the exchange before a normal response is written.
TERMINAL_KINDS: Final = frozenset({"status", "refuse", "hang"})
# Kinds that stop the body early; the first one that fires wins.
CUT_KINDS: Final = ("headers_only", "stall", "reset", "truncate")
Method = Literal["GET", "HEAD", "LIST"]

_DEFAULT_MESSAGES: Final = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "BadGateway": "Bad Gateway",
    "GatewayTimeout": "Gateway Timeout",
    "TooManyRequests": "Too Many Requests",
    "RequestTimeout": "Your socket connection to the server was not read from or written to "
    "within the timeout period. Idle connections will be closed.",
    "ExpiredToken": "The provided token has expired.",
    "AccessDenied": "Access Denied",
}
_DEFAULT_CODES: Final = {
    400: "RequestTimeout",
    403: "AccessDenied",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "SlowDown",
    504: "GatewayTimeout",
}


@dataclass(frozen=True, kw_only=True)
class Fault:
    """What goes wrong, and for how many matching requests.

    Build faults with the class methods (``Fault.status(503)``,
    ``Fault.reset(at_fraction=0.5)``...), then attach them with
    :meth:`FaultServer.add_fault`. Byte positions (``at_byte``,
    ``at_fraction``) are relative to the response body, so for a ranged GET
    ``at_byte=0`` is the first byte of the range.

    Attributes:
        kind: the fault (see the class methods for each one).
        times: how many matching requests it hits; None (the default) = all.
        skip: how many matching requests pass untouched before it starts.
        http_status, error_code, error_message, retry_after: for ``status``.
        rst: ``refuse`` with a TCP reset instead of a FIN.
        at_byte, at_fraction: where a body is cut / a byte flipped / dripping starts.
        chunk, interval: ``drip`` sends ``chunk`` bytes every ``interval`` seconds.
        seconds: ``delay`` before the response.
        extra: ``extra_bytes`` sent after the body.
        shift: ``wrong_content_range`` moves the advertised range by this much.
        data, etag: ``replace`` the object with these bytes / this ETag.

    Example:
        >>> Fault.status(503, times=2).error_code
        'SlowDown'
    """

    kind: FaultKind
    times: int | None = None
    skip: int = 0
    http_status: int = 0
    error_code: str = ""
    error_message: str = ""
    retry_after: int | None = None
    rst: bool = False
    at_byte: int | None = None
    at_fraction: float | None = None
    chunk: int = 1
    interval: float = 0.0
    seconds: float = 0.0
    extra: bytes = b""
    shift: int = 0
    data: bytes | None = None
    etag: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0 or None")
        if self.skip < 0:
            raise ValueError("skip must be >= 0")
        if self.at_fraction is not None and not 0.0 <= self.at_fraction <= 1.0:
            raise ValueError("at_fraction must be within [0, 1]")
        if self.at_byte is not None and self.at_byte < 0:
            raise ValueError("at_byte must be >= 0")
        if self.kind == "status" and not 100 <= self.http_status <= 599:
            raise ValueError("a status fault needs an HTTP status")
        if self.kind == "drip" and (self.chunk <= 0 or self.interval < 0):
            raise ValueError("drip needs chunk > 0 and interval >= 0")

    def position(self, length: int, default: float = 0.5) -> int:
        """The body offset this fault acts at, clamped to ``[0, length]``."""
        if self.at_byte is not None:
            return min(self.at_byte, length)
        fraction = default if self.at_fraction is None else self.at_fraction
        return min(length, int(length * fraction))

    # ----------------------------------------------------------------- constructors

    @classmethod
    def status(
        cls,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> Fault:
        """Answer with an S3 error ``status``/``code`` (503 SlowDown, 500, 403 ExpiredToken...).

        Example:
            >>> Fault.status(500, times=1).error_code
            'InternalError'
        """
        code = code or _DEFAULT_CODES.get(status, "InternalError")
        return cls(
            kind="status",
            http_status=status,
            error_code=code,
            error_message=message or _DEFAULT_MESSAGES.get(code, code),
            retry_after=retry_after,
            times=times,
            skip=skip,
        )

    @classmethod
    def expired_token(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """403 ``ExpiredToken`` (temporary credentials ran out)."""
        return cls.status(403, code="ExpiredToken", times=times, skip=skip)

    @classmethod
    def access_denied(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """403 ``AccessDenied``."""
        return cls.status(403, code="AccessDenied", times=times, skip=skip)

    @classmethod
    def presigned_expired(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """403 ``AccessDenied`` / "Request has expired", as S3 answers a stale presigned URL."""
        return cls.status(
            403, code="AccessDenied", message="Request has expired", times=times, skip=skip
        )

    @classmethod
    def refuse(cls, *, rst: bool = False, times: int | None = None, skip: int = 0) -> Fault:
        """Read the request, then close without answering (FIN, or RST with ``rst=True``)."""
        return cls(kind="refuse", rst=rst, times=times, skip=skip)

    @classmethod
    def hang(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """Read the request and never answer (held until the client leaves or the server closes)."""
        return cls(kind="hang", times=times, skip=skip)

    @classmethod
    def headers_only(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """Send the response headers, then no body; hold the connection open."""
        return cls(kind="headers_only", times=times, skip=skip)

    @classmethod
    def stall(
        cls,
        *,
        at_fraction: float | None = None,
        at_byte: int | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> Fault:
        """Send the body up to a point (default 50 %), then hold the connection open."""
        return cls(kind="stall", at_fraction=at_fraction, at_byte=at_byte, times=times, skip=skip)

    @classmethod
    def drip(
        cls,
        *,
        chunk: int = 1,
        interval: float = 0.05,
        at_byte: int = 0,
        times: int | None = None,
        skip: int = 0,
    ) -> Fault:
        """After ``at_byte`` bytes, send ``chunk`` bytes every ``interval`` seconds."""
        return cls(
            kind="drip", chunk=chunk, interval=interval, at_byte=at_byte, times=times, skip=skip
        )

    @classmethod
    def reset(
        cls,
        *,
        at_fraction: float | None = None,
        at_byte: int | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> Fault:
        """Send the body up to a point (default 50 %), then reset the connection (RST)."""
        return cls(kind="reset", at_fraction=at_fraction, at_byte=at_byte, times=times, skip=skip)

    @classmethod
    def truncate(
        cls,
        *,
        at_fraction: float | None = None,
        at_byte: int | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> Fault:
        """Send the body up to a point (default 50 %), then close (FIN) short of Content-Length."""
        return cls(
            kind="truncate", at_fraction=at_fraction, at_byte=at_byte, times=times, skip=skip
        )

    @classmethod
    def extra_bytes(
        cls, extra: bytes = b"GARBAGE!", *, times: int | None = None, skip: int = 0
    ) -> Fault:
        """Send ``extra`` after a complete body (more than Content-Length), then close."""
        return cls(kind="extra_bytes", extra=extra, times=times, skip=skip)

    @classmethod
    def wrong_content_range(
        cls, shift: int = 1, *, times: int | None = None, skip: int = 0
    ) -> Fault:
        """On a 206, advertise a Content-Range moved by ``shift`` bytes (the body is right)."""
        return cls(kind="wrong_content_range", shift=shift, times=times, skip=skip)

    @classmethod
    def missing_content_range(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """Answer a 206 without a Content-Range header."""
        return cls(kind="missing_content_range", times=times, skip=skip)

    @classmethod
    def ignore_range(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """Ignore the Range header: 200 with the whole body."""
        return cls(kind="ignore_range", times=times, skip=skip)

    @classmethod
    def ignore_if_match(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """Ignore the If-Match header (serve whatever the object is now)."""
        return cls(kind="ignore_if_match", times=times, skip=skip)

    @classmethod
    def replace(
        cls,
        data: bytes | None = None,
        *,
        etag: str | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> Fault:
        """Overwrite the object before answering (new bytes, new ETag, new version).

        Without ``data`` the new body is generated with the same size. Once by
        default: ``Fault.replace(skip=1)`` changes the object on its 2nd request.
        """
        return cls(kind="replace", data=data, etag=etag, times=times, skip=skip)

    @classmethod
    def delete(cls, *, times: int | None = 1, skip: int = 0) -> Fault:
        """Delete the object before answering (this and later requests get 404 NoSuchKey)."""
        return cls(kind="delete", times=times, skip=skip)

    @classmethod
    def flip_byte(
        cls,
        *,
        at_fraction: float | None = None,
        at_byte: int | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> Fault:
        """Corrupt one body byte (default: the middle); ETag and checksum headers are unchanged."""
        return cls(
            kind="flip_byte", at_fraction=at_fraction, at_byte=at_byte, times=times, skip=skip
        )

    @classmethod
    def delay(cls, seconds: float, *, times: int | None = None, skip: int = 0) -> Fault:
        """Wait ``seconds`` before answering normally (first-byte latency)."""
        return cls(kind="delay", seconds=seconds, times=times, skip=skip)

    @classmethod
    def repeat_token(cls, *, times: int | None = None, skip: int = 0) -> Fault:
        """ListObjectsV2: return as NextContinuationToken a token the client already has."""
        return cls(kind="repeat_token", times=times, skip=skip)

    # ----------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: fields that differ from the defaults; bytes as ``<name>_base64``."""
        out: dict[str, Any] = {"kind": self.kind}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.name == "kind" or value == spec.default:
                continue
            if isinstance(value, bytes):
                out[f"{spec.name}_base64"] = base64.b64encode(value).decode()
            else:
                out[spec.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from its JSON form (see :meth:`to_dict`).

        ``data`` / ``extra`` may be given as text (UTF-8) or as ``<name>_base64``.
        A ``status`` fault may use ``status`` / ``code`` / ``message`` for short.

        Example:
            >>> Fault.from_dict({"kind": "status", "status": 503, "times": 1}).error_code
            'SlowDown'
        """
        values = dict(data)
        if values.get("kind") == "status" and "http_status" not in values:
            return cls.status(
                int(values.pop("status", 0)),
                code=values.pop("code", None),
                message=values.pop("message", None),
                retry_after=values.pop("retry_after", None),
                times=values.pop("times", None),
                skip=int(values.pop("skip", 0)),
            )
        for name in ("data", "extra"):
            if f"{name}_base64" in values:
                values[name] = base64.b64decode(values.pop(f"{name}_base64"))
            elif isinstance(values.get(name), str):
                values[name] = values[name].encode()
        known = {spec.name for spec in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        return cls(**values)


@dataclass(kw_only=True, eq=False)
class FaultRule:
    """A fault attached to the requests it matches (returned by ``add_fault``).

    Attributes:
        fault: the fault.
        bucket: bucket name, or None for every bucket.
        key: object key, or None for every key (ignored for ``LIST``).
        method: ``"GET"``, ``"HEAD"``, ``"LIST"``, or None for GET and HEAD.
        ranged: True = only requests with a Range header, False = only without.
        range_start: only ranged requests whose first byte is this.
        min_range_start: only ranged requests whose first byte is at least this
            (``min_range_start=1``: "not the first part").
        matched: matching requests seen so far.
        fired: requests the fault actually hit.

    Example:
        >>> rule = FaultRule(fault=Fault.hang(), bucket="b", key="k")
        >>> rule.matches("GET", "b", "k", None)
        True
    """

    fault: Fault
    bucket: str | None = None
    key: str | None = None
    method: Method | None = None
    ranged: bool | None = None
    range_start: int | None = None
    min_range_start: int | None = None
    matched: int = field(default=0)
    fired: int = field(default=0)

    def __post_init__(self) -> None:
        if self.method not in (None, "GET", "HEAD", "LIST"):
            raise ValueError("method must be GET, HEAD, LIST or None")

    def matches(self, method: str, bucket: str, key: str, range_start: int | None) -> bool:
        """Whether a request is one this rule counts (``range_start`` None = not ranged)."""
        if self.bucket is not None and self.bucket != bucket:
            return False
        if self.method == "LIST" or method == "LIST":
            return self.method == method
        if self.method is not None and self.method != method:
            return False
        if self.key is not None and self.key != key:
            return False
        if self.ranged is not None and self.ranged != (range_start is not None):
            return False
        if self.range_start is not None and range_start != self.range_start:
            return False
        return self.min_range_start is None or (
            range_start is not None and range_start >= self.min_range_start
        )

    def consider(self, method: str, bucket: str, key: str, range_start: int | None) -> bool:
        """Count a request; True if the fault hits it (call under the server's lock)."""
        if not self.matches(method, bucket, key, range_start):
            return False
        index = self.matched
        self.matched += 1
        if index < self.fault.skip:
            return False
        if self.fault.times is not None and index >= self.fault.skip + self.fault.times:
            return False
        self.fired += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.fault.to_dict()}
        for name in ("bucket", "key", "method", "ranged", "range_start", "min_range_start"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        values = dict(data)
        fault = Fault.from_dict(values.pop("fault"))
        allowed = {"bucket", "key", "method", "ranged", "range_start", "min_range_start"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}")
        return cls(fault=fault, **values)


def parse_script(
    script: Mapping[str, Any] | Sequence[Any] | str | os.PathLike[str],
) -> tuple[list[FaultRule], int]:
    """Read a fault script: ``(rules, connections to refuse)``.

    ``script`` is a path to a JSON file, or its parsed content: either a list
    of rules or ``{"faults": [rules...], "refuse_connections": N}``.
    """
    if isinstance(script, str | os.PathLike):
        with open(script, encoding="utf-8") as file:
            script = cast("Mapping[str, Any] | Sequence[Any]", json.load(file))
    if isinstance(script, Mapping):
        rules = script.get("faults", [])
        refuse = int(script.get("refuse_connections", 0))
        unknown = set(script) - {"faults", "refuse_connections"}
        if unknown:
            raise ValueError(f"unknown script fields {sorted(unknown)}")
    else:
        rules, refuse = script, 0
    return [FaultRule.from_dict(rule) for rule in rules], refuse
