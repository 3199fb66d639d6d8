"""ListObjectsV2 pages: query, decoding, and refusing what is not a listing,
in every XML dialect S3-compatible stores answer in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from s3pull import ProtocolError
from s3pull.transport._listing import ListCursor, list_query, parse_list_page

AWS_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
S3RVER_NS = 'xmlns="http://doc.s3.amazonaws.com/2006-03-01/"'
NAMESPACES = pytest.mark.parametrize("ns", [AWS_NS, S3RVER_NS, ""], ids=["aws", "s3rver", "none"])


def page(
    contents: str, *, truncated: bool = False, token: str | None = None, ns: str = AWS_NS
) -> bytes:
    next_token = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        f"<ListBucketResult {ns}><Name>b</Name><EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{next_token}"
        f"{contents}</ListBucketResult>"
    ).encode()


def entry(key: str, size: int = 1, etag: str = "&quot;abc&quot;") -> str:
    return (
        f"<Contents><Key>{key}</Key><LastModified>2024-05-01T12:00:00.000Z</LastModified>"
        f"<ETag>{etag}</ETag><Size>{size}</Size><StorageClass>GLACIER</StorageClass></Contents>"
    )


def test_query_asks_for_url_encoded_keys() -> None:
    assert list_query("", ListCursor(token="tok")) == {
        "list-type": "2",
        "encoding-type": "url",
        "max-keys": "1000",
        "continuation-token": "tok",
    }


def test_query_starts_after_a_key_when_the_store_gave_no_token() -> None:
    assert list_query("p/", ListCursor(start_after="p/a b")) == {
        "list-type": "2",
        "encoding-type": "url",
        "max-keys": "1000",
        "prefix": "p/",
        "start-after": "p/a b",
    }


@NAMESPACES
def test_keys_are_decoded_and_fields_parsed(ns: str) -> None:
    parsed = parse_list_page(
        page(entry("a%20b/c%2Bd%0A%C3%BC", size=42), truncated=True, token="next", ns=ns),
        source="s",
    )
    (listed,) = parsed.objects
    assert listed.key == "a b/c+d\nü"
    assert (listed.size, listed.etag, listed.storage_class) == (42, '"abc"', "GLACIER")
    assert listed.last_modified == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parsed.next_token == ListCursor(token="next")


def test_a_prefixed_namespace_is_read_too() -> None:
    body = (
        b'<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<s3:IsTruncated>true</s3:IsTruncated><s3:NextContinuationToken>t"
        b"</s3:NextContinuationToken><s3:Contents><s3:Key>k</s3:Key><s3:Size>5</s3:Size>"
        b"</s3:Contents></s3:ListBucketResult>"
    )
    parsed = parse_list_page(body, source="s")
    assert [(o.key, o.size) for o in parsed.objects] == [("k", 5)]
    assert parsed.next_token == ListCursor(token="t")


@NAMESPACES
def test_keys_are_taken_verbatim_when_the_store_did_not_encode_them(ns: str) -> None:
    # s3rver ignores encoding-type=url and says so by sending no EncodingType.
    body = (
        f"<ListBucketResult {ns}><Contents><Key>a%20b+c</Key><Size>1</Size></Contents>"
        f"</ListBucketResult>"
    ).encode()
    assert parse_list_page(body, source="s").objects[0].key == "a%20b+c"


@NAMESPACES
def test_optional_fields_may_be_missing(ns: str) -> None:
    # No KeyCount, IsTruncated, LastModified, ETag or StorageClass: still a page.
    body = f"<ListBucketResult {ns}><Contents><Key>k</Key><Size> 7 </Size></Contents>"
    parsed = parse_list_page((body + "</ListBucketResult>").encode(), source="s")
    (listed,) = parsed.objects
    assert (listed.key, listed.size, listed.etag, listed.last_modified) == ("k", 7, None, None)
    assert listed.storage_class is None
    assert parsed.next_token is None


@pytest.mark.parametrize(
    ("listed", "expected"),
    [("&quot;abc&quot;", '"abc"'), ("abc", '"abc"'), (" abc ", '"abc"'), ("", None)],
)
def test_etags_are_quoted_whatever_the_store_sent(listed: str, expected: str | None) -> None:
    (obj,) = parse_list_page(page(entry("k", etag=listed)), source="s").objects
    assert obj.etag == expected


def test_last_page_has_no_token() -> None:
    assert parse_list_page(page(entry("k")), source="s").next_token is None


@NAMESPACES
def test_a_truncated_page_without_a_token_continues_after_its_last_key(ns: str) -> None:
    parsed = parse_list_page(page(entry("a") + entry("b%20c"), truncated=True, ns=ns), source="s")
    assert parsed.next_token == ListCursor(start_after="b c")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops", "not XML"),
        (b"<Error><Code>InternalError</Code></Error>", "expected a ListBucketResult"),
        (page("", truncated=True), "without a continuation token or keys"),
        (page("<Contents><Key>k</Key></Contents>"), "no key or no size"),
        (page("<Contents><Size>1</Size></Contents>"), "no key or no size"),
        (page("<Contents><Key>k</Key><Size>-1</Size></Contents>"), "no key or no size"),
    ],
)
def test_what_is_not_a_listing_is_a_protocol_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_list_page(body, source="s3://b/p/")
