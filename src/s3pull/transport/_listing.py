"""ListObjectsV2 pages: the request's query and the parsed answer. Pure code.

Keys are asked for with ``encoding-type=url``: S3 XML cannot carry every
character a key may hold (control characters), so the store percent-encodes
them and we decode them here, as boto3 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

from .._errors import ProtocolError
from ._response import quoted_etag
from ._xml import NotXML, parse_xml


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
class ListCursor:
    """Where the next page of a listing starts.

    Attributes:
        token: the ``NextContinuationToken`` of the page before.
        start_after: the last key of the page before, for a store that says
            a page is truncated but sends no token (what the AWS CLI does
            with a ``ListObjects`` page without ``NextMarker``).
    """

    token: str | None = None
    start_after: str | None = None


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing, and where the next one starts (None: the last page)."""

    objects: list[ListedObject]
    next_token: ListCursor | None


def list_query(prefix: str, cursor: ListCursor | None, max_keys: int = 1000) -> dict[str, str]:
    """The query of one ListObjectsV2 request.

    Example:
        >>> list_query("logs/", None)
        {'list-type': '2', 'encoding-type': 'url', 'max-keys': '1000', 'prefix': 'logs/'}
    """
    query = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys)}
    if prefix:
        query["prefix"] = prefix
    if cursor is not None and cursor.token is not None:
        query["continuation-token"] = cursor.token
    elif cursor is not None and cursor.start_after is not None:
        query["start-after"] = cursor.start_after
    return query


def parse_list_page(body: bytes, *, source: str) -> ListPage:
    """Parse a ``ListBucketResult``, in any XML namespace or none, as botocore
    does; raise :class:`ProtocolError` if it is not one.

    Only ``Key`` and ``Size`` are required of an object; ``KeyCount``,
    ``IsTruncated`` (false), ``EncodingType`` and the rest are optional.

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
        root = parse_xml(body)
    except NotXML as exc:
        raise ProtocolError(f"the listing is not XML: {exc}", source=source) from None
    if root.tag != "ListBucketResult":
        raise ProtocolError(f"expected a ListBucketResult, got <{root.tag}>", source=source)
    encoded = (root.findtext("EncodingType") or "").strip().lower() == "url"
    objects = []
    for item in root.iterfind("Contents"):
        key = item.findtext("Key")
        size = (item.findtext("Size") or "").strip()
        if key is None or not size.isdigit():
            raise ProtocolError("a listed object has no key or no size", source=source)
        objects.append(
            ListedObject(
                key=unquote_plus(key) if encoded else key,
                size=int(size),
                etag=quoted_etag(item.findtext("ETag")),
                last_modified=_timestamp(item.findtext("LastModified")),
                storage_class=item.findtext("StorageClass") or None,
            )
        )
    truncated = (root.findtext("IsTruncated") or "false").strip().lower() == "true"
    if not truncated:
        return ListPage(objects, None)
    token = (root.findtext("NextContinuationToken") or "").strip()
    if token:
        return ListPage(objects, ListCursor(token=token))
    if not objects:
        raise ProtocolError(
            "a truncated listing page without a continuation token or keys", source=source
        )
    return ListPage(objects, ListCursor(start_after=objects[-1].key))


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
