"""Whether a GET's answer is the one asked for: pure checks of its status and headers.

Every part of a download is pinned to one object: its size, and its ETag and
version when they are known. An answer that shows another size, ETag or
version means the object changed (``ObjectChangedError``: a restart may
help); one that covers other bytes than those asked for is a broken server
(``ProtocolError``); a 200 with the whole object where a range was asked for
means the server ignores ``Range`` (:class:`RangeIgnored`: the download
goes on as one plain GET).
"""

from __future__ import annotations

from typing import Protocol

from .._errors import ObjectChangedError, ProtocolError


class Pinned(Protocol):
    """What every answer of one download must agree with."""

    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def version_id(self) -> str | None: ...


class Answer(Protocol):
    """What a GET answer tells before its body (``transport.ResponseHead``)."""

    @property
    def status(self) -> int: ...
    @property
    def content_range(self) -> tuple[int, int, int | None] | None: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def version_id(self) -> str | None: ...


class RangeIgnored(Exception):
    """A ranged GET came back 200 with the whole object: the server ignores Range."""


def check_answer(pinned: Pinned, answer: Answer, first: int, last: int, *, ranged: bool) -> None:
    """Raise unless ``answer`` brings bytes ``first..last`` of the ``pinned`` object.

    ``ranged``: the GET asked for those bytes with ``Range`` (else it asked
    for the whole object).

    Raises:
        ObjectChangedError: another size, ETag or version.
        ProtocolError: a 206 for other bytes than those asked for.
        RangeIgnored: a 200 for a range that is not the whole object.

    Example:
        >>> from types import SimpleNamespace as Of
        >>> pinned = Of(size=10, etag='"a"', version_id=None)
        >>> answer = Of(status=206, content_range=(0, 4, 10), content_length=5,
        ...             etag='"a"', version_id=None)
        >>> check_answer(pinned, answer, 0, 4, ranged=True)  # nothing raised
    """
    size = pinned.size
    if answer.status == 206 and answer.content_range is not None:
        got_first, got_last, total = answer.content_range
        if total is not None and total != size:
            raise ObjectChangedError(f"the object's size changed from {size} to {total} bytes")
        if (got_first, got_last) != (first, last):
            raise ProtocolError(
                f"asked for bytes {first}-{last} but the server sent {got_first}-{got_last}"
            )
    elif ranged and (first, last) != (0, size - 1):
        raise RangeIgnored
    elif answer.content_length is not None and answer.content_length != size:
        raise ObjectChangedError(
            f"the object's size changed from {size} to {answer.content_length} bytes"
        )
    etag = answer.etag
    if pinned.etag is not None and etag is not None and etag != pinned.etag:
        raise ObjectChangedError(f"the ETag changed from {pinned.etag} to {etag}")
    version = answer.version_id
    if pinned.version_id is not None and version is not None and version != pinned.version_id:
        raise ObjectChangedError(f"the version changed from {pinned.version_id} to {version}")
