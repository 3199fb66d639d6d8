"""S3 answers in every dialect AWS's SDKs accept: error documents in any XML
namespace, ETags with or without quotes, Content-Range variants."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import s3pull
from s3pull.transport._response import ResponseHead
from s3pull.transport._translate import error_from_response

ERRORS = [
    b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>",
    b'<?xml version="1.0"?>\n<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Code>NoSuchKey</Code><Message>gone</Message></Error>",
    b'<Error xmlns="http://doc.s3.amazonaws.com/2006-03-01/"><Code>NoSuchKey</Code>'
    b"<Message>gone</Message></Error>",
    b'<s3:Error xmlns:s3="urn:x"><s3:Code>NoSuchKey</s3:Code><s3:Message>gone'
    b"</s3:Message></s3:Error>",
    b"<ErrorResponse><Error><Code> NoSuchKey\n</Code><Message>gone</Message></Error>"
    b"</ErrorResponse>",
]


@pytest.mark.parametrize("body", ERRORS, ids=["none", "aws", "s3rver", "prefixed", "wrapped"])
def test_error_code_and_message_in_any_namespace(body: bytes) -> None:
    error = error_from_response(404, {}, body, source="s3://b/k")
    assert isinstance(error, s3pull.NotFoundError)
    assert (error.code, str(error.message)) == ("NoSuchKey", "not found (404 NoSuchKey: gone)")


def test_a_credential_code_in_another_namespace_is_a_credentials_error() -> None:
    body = b'<Error xmlns="urn:other"><Code>InvalidAccessKeyId</Code></Error>'
    error = error_from_response(403, {}, body, source="s3://b/k")
    assert isinstance(error, s3pull.CredentialsError)


@pytest.mark.parametrize("body", [b"", b"<html><body>502 Bad Gateway", b"<Error><Code>"])
def test_a_body_that_is_no_error_document_leaves_the_status(body: bytes) -> None:
    error = error_from_response(502, {}, body, source="s3://b/k")
    assert isinstance(error, s3pull.ServerError)
    assert error.code is None


def head(status: int, **headers: str) -> ResponseHead:
    fields = CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))
    return ResponseHead(status, fields, "s3://b/k", (0, 9))


@pytest.mark.parametrize(
    "value",
    ["bytes 0-9/3000", "Bytes 0-9/3000", "bytes=0-9/3000", "bytes  0 - 9 / 3000 "],
)
def test_content_range_forms(value: str) -> None:
    assert head(206, Content_Range=value).content_range == (0, 9, 3000)


def test_content_range_of_unknown_total() -> None:
    assert head(206, Content_Range="bytes 0-9/*").content_range == (0, 9, None)


@pytest.mark.parametrize("value", ["", "bytes 0-9", "items 0-9/10", "bytes -9/10"])
def test_malformed_content_range_is_a_protocol_error(value: str) -> None:
    with pytest.raises(s3pull.ProtocolError, match="Content-Range"):
        head(206, Content_Range=value)


@pytest.mark.parametrize(
    ("sent", "seen"), [('"abc"', '"abc"'), ("abc", '"abc"'), ('W/"abc"', 'W/"abc"')]
)
def test_etag_header_is_quoted_and_read_in_any_case(sent: str, seen: str) -> None:
    assert head(200, etag=sent).etag == seen
