"""ListObjectsV2 pages: query, decoding, and refusing what is not a listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from s3pull import ProtocolError
from s3pull.transport._listing import list_query, parse_list_page

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def page(contents: str, *, truncated: bool = False, token: str | None = None) -> bytes:
    next_token = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        f"<ListBucketResult {NS}><Name>b</Name><EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{next_token}"
        f"{contents}</ListBucketResult>"
    ).encode()


def entry(key: str, size: int = 1, etag: str = "&quot;abc&quot;") -> str:
    return (
        f"<Contents><Key>{key}</Key><LastModified>2024-05-01T12:00:00.000Z</LastModified>"
        f"<ETag>{etag}</ETag><Size>{size}</Size><StorageClass>GLACIER</StorageClass></Contents>"
    )


def test_query_asks_for_url_encoded_keys() -> None:
    assert list_query("", "tok") == {
        "list-type": "2",
        "encoding-type": "url",
        "max-keys": "1000",
        "continuation-token": "tok",
    }


def test_keys_are_decoded_and_fields_parsed() -> None:
    parsed = parse_list_page(
        page(entry("a%20b/c%2Bd%0A%C3%BC", size=42), truncated=True, token="next"), source="s"
    )
    (listed,) = parsed.objects
    assert listed.key == "a b/c+d\nü"
    assert (listed.size, listed.etag, listed.storage_class) == (42, '"abc"', "GLACIER")
    assert listed.last_modified == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parsed.next_token == "next"


def test_last_page_has_no_token() -> None:
    assert parse_list_page(page(entry("k")), source="s").next_token is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops", "not XML"),
        (b"<Error><Code>InternalError</Code></Error>", "expected a ListBucketResult"),
        (page("", truncated=True), "without a continuation token"),
        (page("<Contents><Key>k</Key></Contents>"), "no key or no size"),
        (page("<Contents><Size>1</Size></Contents>"), "no key or no size"),
    ],
)
def test_what_is_not_a_listing_is_a_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_list_page(body, source="s3://b/p/")
