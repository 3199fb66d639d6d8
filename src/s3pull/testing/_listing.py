"""ListObjectsV2 and the S3 XML documents (errors, listings).

Continuation tokens are opaque to clients but stateless here: base64 of
``k:<last key returned>`` or ``p:<last common prefix returned>``. Resuming is a
``bisect`` into the bucket's sorted keys, and a common prefix is skipped in one
``bisect`` too, so a page costs O(log n + max-keys) even in a 100k-key bucket.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import time
from collections.abc import Mapping
from urllib.parse import quote_plus
from xml.sax.saxutils import escape

from ._store import S3Error, Store, StoredObject

_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def iso8601(timestamp: float) -> str:
    """``2024-05-01T12:00:00.000Z``, the listing date format."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(timestamp))


def error_xml(error: S3Error, request_id: str) -> bytes:
    """The XML body of an S3 error response."""
    parts = [
        _XML_HEAD,
        "<Error>",
        f"<Code>{escape(error.code)}</Code>",
        f"<Message>{escape(error.message)}</Message>",
    ]
    parts.extend(f"<{name}>{escape(value)}</{name}>" for name, value in error.fields.items())
    parts.append(f"<RequestId>{request_id}</RequestId><HostId>s3pull-testing</HostId></Error>")
    return "".join(parts).encode("utf-8")


def list_buckets_xml(store: Store) -> bytes:
    """``GET /``: ListAllMyBucketsResult."""
    with store.lock:
        names = sorted(store.buckets)
    buckets = "".join(
        f"<Bucket><Name>{escape(name)}</Name><CreationDate>{iso8601(0)}</CreationDate></Bucket>"
        for name in names
    )
    return (
        f"{_XML_HEAD}<ListAllMyBucketsResult {_NS}><Owner><ID>s3pull</ID></Owner>"
        f"<Buckets>{buckets}</Buckets></ListAllMyBucketsResult>"
    ).encode()


def encode_token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_token(token: str) -> tuple[str, str]:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        kind, value = "", ""
    if kind not in ("k", "p"):
        raise S3Error(
            400,
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
        )
    return kind, value


def _after_prefix(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        return prefix[:-1] + chr(last + 1)
    return prefix + "\U0010ffff"  # good enough for the one key that ends in U+10FFFF


def list_objects_v2(
    store: Store,
    bucket_name: str,
    query: Mapping[str, str],
    *,
    repeat_token: bool = False,
) -> bytes:
    """Answer ``GET /bucket?list-type=2&...`` with ListBucketResult XML.

    ``repeat_token`` is the ``repeat_token`` fault: the page's
    NextContinuationToken is replaced by the token the request came with (a
    token the client has already seen), or by a token that restarts the
    listing on a first page.
    """
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    start_after = query.get("start-after", "")
    token = query.get("continuation-token")
    url = query.get("encoding-type", "") == "url"
    try:
        max_keys = min(int(query.get("max-keys", "1000")), 1000)
    except ValueError:
        max_keys = -1
    if max_keys < 0:
        raise S3Error(
            400,
            "InvalidArgument",
            "Provided max-keys not an integer or within integer range",
            ArgumentName="max-keys",
        )

    contents: list[StoredObject] = []
    prefixes: list[str] = []
    last: tuple[str, str] | None = None
    with store.lock:
        bucket = store.bucket(bucket_name)
        keys = bucket.keys
        if token is not None:
            kind, value = decode_token(token)
            index = (
                bisect.bisect_right(keys, value)
                if kind == "k"
                else bisect.bisect_left(keys, _after_prefix(value))
            )
        elif start_after:
            index = bisect.bisect_right(keys, start_after)
        else:
            index = 0
        if prefix:
            index = max(index, bisect.bisect_left(keys, prefix))
        while index < len(keys) and len(contents) + len(prefixes) < max_keys:
            key = keys[index]
            if not key.startswith(prefix):
                break
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    prefixes.append(common)
                    last = ("p", common)
                    index = bisect.bisect_left(keys, _after_prefix(common), index)
                    continue
            obj = bucket.objects[key][-1]
            index += 1
            if obj.delete_marker:
                continue
            contents.append(obj)
            last = ("k", key)
        truncated = (
            max_keys > 0
            and last is not None
            and index < len(keys)
            and keys[index].startswith(prefix)
        )

    def enc(value: str) -> str:
        return escape(quote_plus(value, safe="/") if url else value)

    parts = [
        _XML_HEAD,
        f"<ListBucketResult {_NS}>",
        f"<Name>{escape(bucket_name)}</Name>",
        f"<Prefix>{enc(prefix)}</Prefix>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if start_after:
        parts.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
    if url:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
    parts.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if token is not None:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    next_token = encode_token(*last) if truncated and last is not None else None
    if repeat_token:
        truncated = True
        next_token = token if token is not None else encode_token("k", "")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if next_token is not None:
        parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
    parts.extend(
        f"<Contents><Key>{enc(obj.key)}</Key>"
        f"<LastModified>{iso8601(obj.last_modified)}</LastModified>"
        f"<ETag>&quot;{escape(obj.etag)}&quot;</ETag><Size>{obj.size}</Size>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
        for obj in contents
    )
    parts.extend(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    parts.append("</ListBucketResult>")
    return "".join(parts).encode("utf-8")
