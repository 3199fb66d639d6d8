"""ListObjectsV2 pages: the request's query and the parsed answer. Pure code.

Keys are asked for with ``encoding-type=url``: S3 XML cannot carry every
character a key may hold (control characters), so the store percent-encodes
them and we decode them here, as boto3 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from .._errors import ProtocolError

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object as a listing (or an inventory) describes it.

    Attributes:
        key: the decoded key.
        size: bytes.
        etag: the ETag, quotes included, if any.
        last_modified: when the object was written, if known.
        storage_class: ``STANDARD``, ``GLACIER``..., if known.
    """

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    storage_class: str | None = None


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing, and the token of the next one (None: the last page)."""

    objects: list[ListedObject]
    next_token: str | None


def list_query(prefix: str, token: str | None, max_keys: int = 1000) -> dict[str, str]:
    """The query of one ListObjectsV2 request.

    Example:
        >>> list_query("logs/", None)
        {'list-type': '2', 'encoding-type': 'url', 'max-keys': '1000', 'prefix': 'logs/'}
    """
    query = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys)}
    if prefix:
        query["prefix"] = prefix
    if token is not None:
        query["continuation-token"] = token
    return query


def parse_list_page(body: bytes, *, source: str) -> ListPage:
    """Parse a ``ListBucketResult``; raise :class:`ProtocolError` if it is not one.

    Example:
        >>> page = parse_list_page(
        ...     b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false"
        ...     b"</IsTruncated><Contents><Key>a%20b</Key><Size>3</Size></Contents>"
        ...     b"</ListBucketResult>",
        ...     source="s3://b/",
        ... )
        >>> page.objects[0].key, page.next_token
        ('a b', None)
    """
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ProtocolError(f"the listing is not XML: {exc}", source=source) from None
    ns = _NS if root.tag.startswith(_NS) else ""
    if root.tag != f"{ns}ListBucketResult":
        raise ProtocolError(f"expected a ListBucketResult, got <{root.tag}>", source=source)
    encoded = root.findtext(f"{ns}EncodingType") == "url"
    objects = []
    for item in root.iterfind(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key")
        size = item.findtext(f"{ns}Size", "")
        if key is None or not size.isdigit():
            raise ProtocolError("a listed object has no key or no size", source=source)
        modified = item.findtext(f"{ns}LastModified")
        objects.append(
            ListedObject(
                key=unquote_plus(key) if encoded else key,
                size=int(size),
                etag=item.findtext(f"{ns}ETag"),
                last_modified=_timestamp(modified),
                storage_class=item.findtext(f"{ns}StorageClass"),
            )
        )
    truncated = root.findtext(f"{ns}IsTruncated", "false").strip().lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ProtocolError("a truncated listing page without a continuation token", source=source)
    return ListPage(objects, token)


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
