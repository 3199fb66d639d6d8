"""Tests of s3pull.testing.FaultServer itself, with http.client and raw sockets.

The s3pull client is deliberately not used: these tests pin down what the
server sends on the wire, so client tests can trust it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3pull.testing
from s3pull.testing import Fault, FaultRule, FaultServer, generate_bytes, parse_script

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
DATA = bytes(range(256)) * 40  # 10240 bytes


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.create_bucket("b")
        server.put_object("b", "k", DATA)
        yield server
        errors = server.errors
    assert errors == []


def path(bucket: str, key: str = "", **query: str) -> str:
    out = f"/{quote(bucket)}/{quote(key, safe='/')}" if key else f"/{quote(bucket)}"
    return f"{out}?{urlencode(query)}" if query else out


def call(
    s3: FaultServer,
    target: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    conn: http.client.HTTPConnection | None = None,
) -> Resp:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", s3.port, timeout=5)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return Resp(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        if own:
            conn.close()


def raw(s3: FaultServer, target: str, headers: str = "", timeout: float = 5) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", s3.port), timeout=timeout)
    try:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    except OSError:
        sock.close()
        raise
    return sock


def fetch_raw(s3: FaultServer, target: str) -> tuple[bytes, BaseException | None]:
    """A whole raw exchange; a reset while connecting or sending is returned too."""
    try:
        sock = raw(s3, target)
    except OSError as exc:
        return b"", exc
    try:
        return read_until_end(sock)
    finally:
        sock.close()


def read_until_end(sock: socket.socket) -> tuple[bytes, BaseException | None]:
    """Everything until EOF, or until an error (returned, not raised)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError as exc:
        return b"".join(chunks), exc
    return b"".join(chunks), None


def split_response(data: bytes) -> tuple[str, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def xml_code(body: bytes) -> str:
    return ET.fromstring(body).findtext("Code") or ""


# --------------------------------------------------------------------------- S3 semantics


def test_get_and_head_headers(s3: FaultServer) -> None:
    got = call(s3, "/b/k")
    assert got.status == 200
    assert got.body == DATA
    assert got.headers["etag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert got.headers["content-length"] == str(len(DATA))
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["last-modified"].endswith(" GMT")
    assert "x-amz-version-id" not in got.headers
    head = call(s3, "/b/k", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(DATA))


@pytest.mark.parametrize(
    ("header", "status", "window", "content_range"),
    [
        ("bytes=0-9", 206, (0, 10), "bytes 0-9/10240"),
        ("bytes=10000-", 206, (10000, 10240), "bytes 10000-10239/10240"),
        ("bytes=-100", 206, (10140, 10240), "bytes 10140-10239/10240"),
        ("bytes=10230-99999", 206, (10230, 10240), "bytes 10230-10239/10240"),
        ("bytes=-99999", 206, (0, 10240), "bytes 0-10239/10240"),
        ("bytes=10240-", 416, None, "bytes */10240"),
        ("bytes=-0", 416, None, "bytes */10240"),
        ("bytes=9-3", 200, (0, 10240), None),
        ("bytes=0-1,5-6", 200, (0, 10240), None),
        ("items=0-1", 200, (0, 10240), None),
    ],
)
def test_ranges(
    s3: FaultServer,
    header: str,
    status: int,
    window: tuple[int, int] | None,
    content_range: str | None,
) -> None:
    got = call(s3, "/b/k", {"Range": header})
    assert got.status == status
    assert got.headers.get("content-range") == content_range
    if window is not None:
        assert got.body == DATA[window[0] : window[1]]
    else:
        assert xml_code(got.body) == "InvalidRange"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(0, 300), first=st.integers(0, 320), length=st.integers(1, 320))
def test_ranges_property(shared: FaultServer, size: int, first: int, length: int) -> None:
    data = generate_bytes("p", size)
    shared.put_object("prop", "p", data)
    got = call(shared, "/prop/p", {"Range": f"bytes={first}-{first + length - 1}"})
    if first >= size:
        assert got.status == 416
        assert got.headers["content-range"] == f"bytes */{size}"
    else:
        last = min(size, first + length) - 1
        assert got.status == 206
        assert got.body == data[first : last + 1]
        assert got.headers["content-range"] == f"bytes {first}-{last}/{size}"


def test_zero_byte_object_range_is_416(s3: FaultServer) -> None:
    s3.put_object("b", "empty", b"")
    assert call(s3, "/b/empty").body == b""
    got = call(s3, "/b/empty", {"Range": "bytes=0-"})
    assert got.status == 416
    assert got.headers["content-range"] == "bytes */0"
    assert call(s3, "/b/empty", {"Range": "bytes=-5"}).status == 416


def test_missing_bucket_key_and_head(s3: FaultServer) -> None:
    got = call(s3, "/nob/k")
    assert got.status == 404
    assert got.headers["content-type"] == "application/xml"
    root = ET.fromstring(got.body)
    assert root.findtext("Code") == "NoSuchBucket"
    assert root.findtext("RequestId")
    got = call(s3, "/b/missing")
    assert (got.status, xml_code(got.body)) == (404, "NoSuchKey")
    assert ET.fromstring(got.body).findtext("Key") == "missing"
    head = call(s3, "/b/missing", method="HEAD")
    assert (head.status, head.body) == (404, b"")


def test_if_match(s3: FaultServer) -> None:
    etag = call(s3, "/b/k", method="HEAD").headers["etag"]
    assert call(s3, "/b/k", {"If-Match": etag}).status == 200
    assert call(s3, "/b/k", {"If-Match": etag.strip('"')}).status == 200
    got = call(s3, "/b/k", {"If-Match": '"nope"', "Range": "bytes=0-1"})
    assert (got.status, xml_code(got.body)) == (412, "PreconditionFailed")
    assert call(s3, "/b/k", {"If-Match": '"nope"'}, method="HEAD").status == 412


def test_versions(s3: FaultServer) -> None:
    s3.create_bucket("v", versioned=True)
    first = s3.put_object("v", "k", b"one")
    second = s3.put_object("v", "k", b"two")
    assert first.version_id and second.version_id and first.version_id != second.version_id
    got = call(s3, "/v/k")
    assert (got.body, got.headers["x-amz-version-id"]) == (b"two", second.version_id)
    got = call(s3, path("v", "k", versionId=first.version_id))
    assert (got.body, got.headers["x-amz-version-id"]) == (b"one", first.version_id)
    got = call(s3, path("v", "k", versionId="bogus"))
    assert (got.status, xml_code(got.body)) == (404, "NoSuchVersion")
    s3.delete_object("v", "k")
    got = call(s3, "/v/k")
    assert (got.status, got.headers.get("x-amz-delete-marker")) == (404, "true")
    assert call(s3, path("v", "k", versionId=first.version_id)).body == b"one"
    assert call(s3, path("b", "k", versionId="null")).body == DATA


@pytest.mark.parametrize("key", ["a b+c%d", "ünï/cödé €", "../../x", "/abs", "dir/", "a//b?"])
def test_keys_are_verbatim(s3: FaultServer, key: str) -> None:
    s3.put_object("b", key, key.encode())
    assert call(s3, path("b", key)).body == key.encode()
    assert s3.requests[-1].key == key
    keys = [c.findtext(f"{NS}Key") for c in list_page(s3, "b").iter(f"{NS}Contents")]
    assert key in keys


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_checksums(s3: FaultServer, algorithm: str) -> None:
    from awscrt import checksums

    expected = {
        "CRC32": zlib.crc32(DATA).to_bytes(4, "big"),
        "CRC32C": checksums.crc32c(DATA).to_bytes(4, "big"),
        "CRC64NVME": checksums.crc64nvme(DATA).to_bytes(8, "big"),
        "SHA1": hashlib.sha1(DATA).digest(),
        "SHA256": hashlib.sha256(DATA).digest(),
    }[algorithm]
    s3.put_object("b", "c", DATA, checksum_algorithm=algorithm)
    name = f"x-amz-checksum-{algorithm.lower()}"
    for method in ("GET", "HEAD"):
        got = call(s3, "/b/c", {"x-amz-checksum-mode": "ENABLED"}, method=method)
        assert got.headers[name] == base64.b64encode(expected).decode()
        assert got.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    assert name not in call(s3, "/b/c").headers
    ranged = call(s3, "/b/c", {"x-amz-checksum-mode": "ENABLED", "Range": "bytes=0-9"})
    assert name not in ranged.headers


def test_composite_checksum_multipart_etag_and_explicit_values(s3: FaultServer) -> None:
    part = 4096
    obj = s3.put_object(
        "b", "mp", DATA, checksum_algorithm="SHA256", checksum_type="COMPOSITE", part_size=part
    )
    digests = b"".join(hashlib.sha256(DATA[i : i + part]).digest() for i in range(0, 10240, part))
    composite = base64.b64encode(hashlib.sha256(digests).digest()).decode() + "-3"
    md5s = b"".join(hashlib.md5(DATA[i : i + part]).digest() for i in range(0, 10240, part))
    got = call(s3, "/b/mp", {"x-amz-checksum-mode": "ENABLED"}, method="HEAD")
    assert got.headers["x-amz-checksum-sha256"] == composite == obj.checksum
    assert got.headers["x-amz-checksum-type"] == "COMPOSITE"
    assert got.headers["etag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    s3.put_object(
        "b", "w", DATA, etag='"abc-3"', checksum_algorithm="CRC32", checksum_value="AAAAAA=="
    )
    got = call(s3, "/b/w", {"x-amz-checksum-mode": "ENABLED"})
    assert (got.headers["etag"], got.headers["x-amz-checksum-crc32"]) == ('"abc-3"', "AAAAAA==")
    with pytest.raises(ValueError, match="COMPOSITE"):
        s3.put_object("b", "x", b"", checksum_algorithm="CRC64NVME", checksum_type="COMPOSITE")


def test_content_type_encoding_and_metadata_served_verbatim(s3: FaultServer) -> None:
    packed = gzip.compress(b"hello " * 100)
    s3.put_object(
        "b",
        "z.gz",
        packed,
        content_type="text/plain",
        content_encoding="gzip",
        metadata={"origin": "test"},
    )
    got = call(s3, "/b/z.gz", {"Accept-Encoding": "gzip"})
    assert got.body == packed
    assert got.headers["content-encoding"] == "gzip"
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["x-amz-meta-origin"] == "test"
    ranged = call(s3, "/b/z.gz", {"Range": "bytes=0-9"})
    assert ranged.body == packed[:10]


def test_error_looking_body_is_just_data(s3: FaultServer) -> None:
    body = b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>'
    s3.put_object("b", "err.xml", body, content_type="application/xml")
    got = call(s3, "/b/err.xml")
    assert (got.status, got.body) == (200, body)
    assert got.headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'


def test_file_backed_and_generated_objects(s3: FaultServer, tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 5)
    (tmp_path / "f").write_bytes(data)
    s3.put_object("b", "file", tmp_path / "f")
    assert call(s3, "/b/file").body == data
    assert call(s3, "/b/file", {"Range": "bytes=1048570-2097160"}).body == data[1048570:2097161]
    assert (
        call(s3, "/b/file", method="HEAD").headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    )
    obj = s3.put_generated("b", "gen", 2**20 + 17, seed=7)
    expected = generate_bytes("gen", 2**20 + 17, seed=7)
    assert call(s3, "/b/gen").body == expected == obj.read()
    assert generate_bytes("other", 64, seed=7) != expected[:64]
    assert s3.bytes_sent("b", "file") == len(data) + 1048591


def test_keep_alive_and_connection_close(s3: FaultServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=5)
    for _ in range(3):
        assert call(s3, "/b/k", conn=conn).body == DATA
    assert call(s3, "/b/missing", conn=conn).status == 404
    conn.close()
    assert len({record.connection for record in s3.requests}) == 1
    sock = raw(s3, "/b/k", "Connection: close\r\n")
    data, error = read_until_end(sock)
    sock.close()
    head, body = split_response(data)
    assert error is None
    assert "Connection: close" in head
    assert body == DATA


def test_bad_request_and_unsupported_methods(s3: FaultServer) -> None:
    sock = socket.create_connection(("127.0.0.1", s3.port), timeout=5)
    sock.sendall(b"NONSENSE\r\n\r\n")
    data, _ = read_until_end(sock)
    sock.close()
    assert data.startswith(b"HTTP/1.1 400")
    got = call(s3, "/b/k", method="PUT")
    assert (got.status, xml_code(got.body)) == (501, "NotImplemented")
    assert call(s3, "/b", method="HEAD").status == 200
    assert call(s3, "/nob", method="HEAD").status == 404
    assert call(s3, "/b?location").status == 200


# --------------------------------------------------------------------------- listing


def list_page(s3: FaultServer, bucket: str, **query: str) -> ET.Element:
    got = call(s3, path(bucket, **{"list-type": "2", **query}))
    assert got.status == 200, got.body
    return ET.fromstring(got.body)


def list_all(s3: FaultServer, bucket: str, **query: str) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        extra = {"continuation-token": token} if token else {}
        page = list_page(s3, bucket, **query, **extra)
        pages += 1
        keys += [c.findtext(f"{NS}Key") or "" for c in page.iter(f"{NS}Contents")]
        prefixes += [p.findtext(f"{NS}Prefix") or "" for p in page.iter(f"{NS}CommonPrefixes")]
        if page.findtext(f"{NS}IsTruncated") != "true":
            return keys, prefixes, pages
        token = page.findtext(f"{NS}NextContinuationToken")


def test_list_fields_prefix_delimiter(s3: FaultServer) -> None:
    for key in ["a/1", "a/2", "a/b/3", "b/1", "c", "c/d"]:
        s3.put_object("l", key, key.encode())
    page = list_page(s3, "l", prefix="a/", delimiter="/")
    assert page.findtext(f"{NS}Name") == "l"
    assert page.findtext(f"{NS}Prefix") == "a/"
    assert page.findtext(f"{NS}KeyCount") == "3"
    assert page.findtext(f"{NS}MaxKeys") == "1000"
    assert page.findtext(f"{NS}IsTruncated") == "false"
    contents = list(page.iter(f"{NS}Contents"))
    assert [c.findtext(f"{NS}Key") for c in contents] == ["a/1", "a/2"]
    first = contents[0]
    assert first.findtext(f"{NS}Size") == "3"
    assert first.findtext(f"{NS}ETag") == f'"{hashlib.md5(b"a/1").hexdigest()}"'
    assert first.findtext(f"{NS}StorageClass") == "STANDARD"
    assert (first.findtext(f"{NS}LastModified") or "").endswith(".000Z")
    assert [p.findtext(f"{NS}Prefix") for p in page.iter(f"{NS}CommonPrefixes")] == ["a/b/"]
    keys, prefixes, _ = list_all(s3, "l", delimiter="/", **{"max-keys": "1"})
    assert (keys, prefixes) == (["c"], ["a/", "b/", "c/"])
    keys, _, _ = list_all(s3, "l", **{"start-after": "a/b/3"})
    assert keys == ["b/1", "c", "c/d"]
    got = call(s3, path("l", **{"list-type": "2", "continuation-token": "garbage!"}))
    assert (got.status, xml_code(got.body)) == (400, "InvalidArgument")
    assert call(s3, path("nob", **{"list-type": "2"})).status == 404


def test_list_url_encoding_and_utf8_order(s3: FaultServer) -> None:
    keys = ["z", "a b+c", "é", "\U0001f600", "A", "~"]
    for key in keys:
        s3.put_object("u", key)
    page = list_page(s3, "u", **{"encoding-type": "url"})
    assert page.findtext(f"{NS}EncodingType") == "url"
    listed = [c.findtext(f"{NS}Key") for c in page.iter(f"{NS}Contents")]
    assert listed == ["A", "a+b%2Bc", "z", "~", "%C3%A9", "%F0%9F%98%80"]
    assert sorted(keys, key=lambda k: k.encode()) == ["A", "a b+c", "z", "~", "é", "\U0001f600"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.sets(st.text(st.sampled_from("ab/c"), min_size=1, max_size=5), max_size=30),
    max_keys=st.integers(1, 7),
    prefix=st.sampled_from(["", "a", "a/", "b"]),
    delimiter=st.sampled_from(["", "/"]),
)
def test_list_pagination_property(
    shared: FaultServer, keys: set[str], max_keys: int, prefix: str, delimiter: str
) -> None:
    bucket = f"h{len(shared.requests)}"
    shared.create_bucket(bucket)
    shared.put_many(bucket, keys)
    query = {"max-keys": str(max_keys), "prefix": prefix}
    if delimiter:
        query["delimiter"] = delimiter
    listed, prefixes, _ = list_all(shared, bucket, **query)
    expected_keys, expected_prefixes = [], set()
    for key in sorted(k for k in keys if k.startswith(prefix)):
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            expected_prefixes.add(key[: cut + 1])
        else:
            expected_keys.append(key)
    assert listed == expected_keys
    assert prefixes == sorted(expected_prefixes)


def test_list_100k_keys_is_fast(s3: FaultServer) -> None:
    started = time.monotonic()
    count = s3.put_many("big", (f"k/{i:06d}" for i in range(100_000)), size=0)
    assert count == 100_000
    page = list_page(s3, "big", prefix="k/09", **{"start-after": "k/099990"})
    assert next(c.findtext(f"{NS}Key") for c in page.iter(f"{NS}Contents")) == "k/099991"
    page = list_page(s3, "big")
    assert page.findtext(f"{NS}KeyCount") == "1000"
    token = page.findtext(f"{NS}NextContinuationToken") or ""
    page = list_page(s3, "big", **{"continuation-token": token})
    assert next(c.findtext(f"{NS}Key") for c in page.iter(f"{NS}Contents")) == "k/001000"
    _, prefixes, _ = list_all(s3, "big", delimiter="/")
    assert prefixes == ["k/"]
    assert time.monotonic() - started < 10
    assert call(s3, "/big/k/000007").body == b""


def test_list_page_fails_once(s3: FaultServer) -> None:
    s3.put_many("l", [f"{i}" for i in range(5)])
    rule = s3.add_list_fault("l", Fault.status(500, times=1, skip=1))
    first = list_page(s3, "l", **{"max-keys": "2"})
    token = first.findtext(f"{NS}NextContinuationToken") or ""
    failed = call(s3, path("l", **{"list-type": "2", "max-keys": "2", "continuation-token": token}))
    assert (failed.status, xml_code(failed.body)) == (500, "InternalError")
    keys, _, _ = list_all(s3, "l", **{"max-keys": "2"})
    assert keys == ["0", "1", "2", "3", "4"]
    assert (rule.matched, rule.fired) == (5, 1)
    assert call(s3, "/l/0").status == 200  # LIST rules never hit object requests


def test_list_repeats_a_continuation_token(s3: FaultServer) -> None:
    s3.put_many("l", [f"{i}" for i in range(6)])
    s3.add_list_fault("l", Fault.repeat_token(skip=1, times=1))
    first = list_page(s3, "l", **{"max-keys": "2"})
    token = first.findtext(f"{NS}NextContinuationToken") or ""
    second = list_page(s3, "l", **{"max-keys": "2", "continuation-token": token})
    assert [c.findtext(f"{NS}Key") for c in second.iter(f"{NS}Contents")] == ["2", "3"]
    assert second.findtext(f"{NS}NextContinuationToken") == token
    assert second.findtext(f"{NS}IsTruncated") == "true"


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SlowDown"),
        (500, "InternalError"),
        (502, "BadGateway"),
        (504, "GatewayTimeout"),
        (429, "TooManyRequests"),
        (400, "RequestTimeout"),
    ],
)
def test_status_faults_first_n(s3: FaultServer, status: int, code: str) -> None:
    rule = s3.add_fault("b", "k", Fault.status(status, times=2, retry_after=3))
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=5)
    for _ in range(2):
        got = call(s3, "/b/k", conn=conn)
        assert (got.status, xml_code(got.body), got.headers["retry-after"]) == (status, code, "3")
    assert call(s3, "/b/k", conn=conn).body == DATA
    conn.close()
    assert rule.fired == 2
    assert [r.faults for r in s3.requests] == [("status",), ("status",), ()]
    head = call(s3, "/b/k", method="HEAD")
    assert head.status == 200


def test_status_fault_always_and_on_head(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.status(503), method="HEAD")
    for _ in range(3):
        head = call(s3, "/b/k", method="HEAD")
        assert (head.status, head.body) == (503, b"")
    assert call(s3, "/b/k").status == 200  # GETs are not matched


def test_per_attempt_and_per_range_matching(s3: FaultServer) -> None:
    third = s3.add_fault("b", "k", Fault.status(500, skip=2, times=1), method="GET")
    later = s3.add_fault("b", "k", Fault.expired_token(), min_range_start=1)
    at = s3.add_fault("b", None, Fault.access_denied(times=1), range_start=4096)
    results = [
        call(s3, "/b/k", {"Range": "bytes=0-1023"}).status,
        call(s3, "/b/k", method="HEAD").status,
        call(s3, "/b/k", {"Range": "bytes=0-1023"}).status,
        call(s3, "/b/k", {"Range": "bytes=0-1023"}).status,
        call(s3, "/b/k", {"Range": "bytes=4096-8191"}).status,
        call(s3, "/b/k", {"Range": "bytes=4096-8191"}).status,
    ]
    assert results == [206, 200, 206, 500, 403, 403]
    got = call(s3, "/b/k", {"Range": "bytes=-10"})  # resolves to first byte 10230
    assert xml_code(got.body) == "ExpiredToken"
    assert (third.matched, third.fired) == (6, 1)
    assert (later.fired, at.fired) == (3, 1)
    # Both 403 rules hit request 5; the first rule added wins.
    assert xml_code(call(s3, "/b/k", {"Range": "bytes=4096-4097"}).body) == "ExpiredToken"
    assert s3.requests[4].faults == ("status", "status")


def test_expired_token_and_presigned_expiry(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.presigned_expired(skip=1))
    assert call(s3, "/b/k", {"Range": "bytes=0-9"}).status == 206
    got = call(s3, "/b/k?X-Amz-Signature=abc", {"Range": "bytes=10-19"})
    root = ET.fromstring(got.body)
    assert (got.status, root.findtext("Code")) == (403, "AccessDenied")
    assert root.findtext("Message") == "Request has expired"
    s3.clear_faults()
    s3.add_fault("b", "k", Fault.expired_token(times=1))
    got = call(s3, "/b/k")
    assert (got.status, xml_code(got.body)) == (403, "ExpiredToken")


def test_refuse_connections_server_wide(s3: FaultServer) -> None:
    s3.refuse_connections(2)
    for _ in range(2):
        data, error = fetch_raw(s3, "/b/k")
        assert data == b""
        assert error is None or isinstance(error, ConnectionResetError)  # EOF; reset if unread
    assert call(s3, "/b/k").body == DATA
    assert s3.refused_connections == 2
    s3.refuse_connections(1, rst=True)
    data, error = fetch_raw(s3, "/b/k")
    assert data == b""
    assert isinstance(error, ConnectionResetError)


def test_refuse_after_reading_request(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.refuse(times=1))
    s3.add_fault("b", "k", Fault.refuse(rst=True, times=1, skip=1))
    with pytest.raises(http.client.RemoteDisconnected):
        call(s3, "/b/k")
    data, error = fetch_raw(s3, "/b/k")
    assert (data, type(error)) == (b"", ConnectionResetError)
    assert call(s3, "/b/k").body == DATA
    assert [r.outcome for r in s3.requests] == ["refused", "refused", "complete"]


def test_hang_holds_until_client_leaves(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.hang(times=1))
    sock = raw(s3, "/b/k", timeout=0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    # Received, not ended: counted as started, not yet recorded.
    assert (s3.started_requests, s3.requests) == (1, [])
    sock.close()
    record = s3.wait_for_requests(1)[0]
    assert (record.status, record.outcome, record.faults) == (0, "hung", ("hang",))
    assert call(s3, "/b/k").body == DATA


def test_headers_only_then_silence(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.headers_only(times=1))
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=0.3)
    conn.request("GET", "/b/k")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(DATA))
    with pytest.raises(TimeoutError):
        response.read(1)
    conn.close()
    record = s3.wait_for_requests(1)[0]
    assert (record.body_bytes_sent, record.outcome) == (0, "held")


def test_stall_mid_body(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.stall(at_fraction=0.25, times=1))
    sock = raw(s3, "/b/k", timeout=0.3)
    received = b""
    with pytest.raises(TimeoutError):
        while chunk := sock.recv(65536):
            received += chunk
    sock.close()
    _, body = split_response(received)
    assert body == DATA[:2560]
    assert s3.wait_for_requests(1)[0].body_bytes_sent == 2560


def test_drip_is_slow_but_complete(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.drip(chunk=2, interval=0.04, at_byte=10230, times=1))
    started = time.monotonic()
    got = call(s3, "/b/k")
    elapsed = time.monotonic() - started
    assert got.body == DATA
    assert 0.15 < elapsed < 3
    assert s3.requests[0].faults == ("drip",)


@pytest.mark.parametrize("at", [0, 5000])
def test_reset_mid_body(s3: FaultServer, at: int) -> None:
    s3.add_fault("b", "k", Fault.reset(at_byte=at), method="GET")
    data, error = fetch_raw(s3, "/b/k")
    assert isinstance(error, ConnectionResetError)
    _head, body = split_response(data)
    assert body == DATA[: len(body)]
    assert len(body) == at  # Linux hands over queued data before reporting the RST
    record = s3.wait_for_requests(1)[0]
    assert (record.outcome, record.body_bytes_sent) == ("reset", at)


def test_truncate_fin_before_content_length(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.truncate(at_fraction=0.5, times=1))
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=5)
    conn.request("GET", "/b/k")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    conn.close()
    assert caught.value.partial == DATA[:5120]
    assert s3.bytes_sent("b", "k") == 5120


def test_extra_bytes_after_body(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.extra_bytes(b"JUNK" * 4, times=1))
    data, error = fetch_raw(s3, "/b/k")
    head, body = split_response(data)
    assert error is None
    assert f"Content-Length: {len(DATA)}" in head
    assert body == DATA + b"JUNK" * 4


def test_wrong_and_missing_content_range(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.wrong_content_range(shift=100, times=1))
    s3.add_fault("b", "k", Fault.missing_content_range(times=1, skip=1))
    got = call(s3, "/b/k", {"Range": "bytes=0-99"})
    assert (got.status, got.headers["content-range"]) == (206, "bytes 100-199/10240")
    assert got.body == DATA[:100]
    got = call(s3, "/b/k", {"Range": "bytes=0-99"})
    assert got.status == 206
    assert "content-range" not in got.headers
    assert got.body == DATA[:100]


def test_ignore_range(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.ignore_range(), range_start=8192)
    assert call(s3, "/b/k", {"Range": "bytes=0-99"}).status == 206
    got = call(s3, "/b/k", {"Range": "bytes=8192-"})
    assert (got.status, got.body) == (200, DATA)
    assert "content-range" not in got.headers


def test_object_changes_after_first_part(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.replace(skip=1), method="GET")
    old = call(s3, "/b/k", {"Range": "bytes=0-99"})
    assert old.body == DATA[:100]
    got = call(s3, "/b/k", {"Range": "bytes=100-199", "If-Match": old.headers["etag"]})
    assert (got.status, xml_code(got.body)) == (412, "PreconditionFailed")
    new = s3.get_object("b", "k")
    assert new.size == len(DATA)
    assert new.read() != DATA
    assert f'"{new.etag}"' != old.headers["etag"]
    assert new.etag == hashlib.md5(new.read()).hexdigest()


def test_object_changes_and_if_match_is_ignored(s3: FaultServer) -> None:
    s3.create_bucket("v", versioned=True)
    first = s3.put_object("v", "k", DATA)
    s3.add_fault("v", "k", Fault.replace(b"NEW" * 10, skip=1), method="GET")
    s3.add_fault("v", "k", Fault.ignore_if_match())
    headers = {"If-Match": f'"{first.etag}"', "Range": "bytes=0-9"}
    assert call(s3, "/v/k", headers).body == DATA[:10]
    got = call(s3, "/v/k", headers)
    assert got.status == 206
    assert got.body == b"NEWNEWNEWN"
    assert got.headers["etag"] == f'"{hashlib.md5(b"NEW" * 10).hexdigest()}"'
    assert got.headers["x-amz-version-id"] != first.version_id
    assert got.headers["content-range"] == "bytes 0-9/30"
    assert call(s3, path("v", "k", versionId=first.version_id or "")).body == DATA


def test_delete_after_n_requests(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.delete(skip=2))
    statuses = [call(s3, "/b/k", {"Range": f"bytes={i}-{i}"}).status for i in range(4)]
    assert statuses == [206, 206, 404, 404]
    assert xml_code(call(s3, "/b/k").body) == "NoSuchKey"


def test_flip_byte_keeps_valid_looking_headers(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("b", "c", DATA, checksum_algorithm="CRC32")
    s3.add_fault("b", "c", Fault.flip_byte(at_byte=77))
    got = call(s3, "/b/c", {"x-amz-checksum-mode": "ENABLED"})
    assert got.headers["etag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert (
        got.headers["x-amz-checksum-crc32"]
        == base64.b64encode(zlib.crc32(DATA).to_bytes(4, "big")).decode()
    )
    assert len(got.body) == len(DATA)
    diff = [i for i in range(len(DATA)) if got.body[i] != DATA[i]]
    assert diff == [77]
    (tmp_path / "f").write_bytes(DATA)
    s3.put_object("b", "file", tmp_path / "f")
    s3.add_fault("b", "file", Fault.flip_byte())
    body = call(s3, "/b/file", {"Range": "bytes=1000-1999"}).body
    assert [i for i in range(1000) if body[i] != DATA[1000 + i]] == [500]


def test_delay_then_normal(s3: FaultServer) -> None:
    s3.add_fault("b", "k", Fault.delay(0.2, times=1))
    started = time.monotonic()
    assert call(s3, "/b/k").body == DATA
    assert time.monotonic() - started >= 0.2


def test_close_cuts_held_connections(tmp_path: Path) -> None:
    server = FaultServer().start()
    server.put_generated("b", "big", 50 * 2**20)
    server.add_fault("b", "k", Fault.hang())
    server.add_fault("b", "big", Fault.drip(chunk=1, interval=0.01))
    server.put_object("b", "k", b"x")
    hung = raw(server, "/b/k")
    dripping = raw(server, "/b/big")
    assert dripping.recv(10)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    time.sleep(0.05)
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 3
    for sock in (hung, dripping, idle):
        read_until_end(sock)  # EOF or reset, but no hang
        sock.close()
    assert {r.outcome for r in server.requests} == {"server_closed"}
    assert server.errors == []
    server.close()  # idempotent


def test_fault_rule_counting_and_clear(s3: FaultServer) -> None:
    rule = s3.add_fault("b", "k", Fault.status(503, times=1), method="GET", ranged=True)
    assert isinstance(rule, FaultRule)
    assert call(s3, "/b/k").status == 200
    assert call(s3, "/b/k", {"Range": "bytes=0-0"}).status == 503
    assert (rule.matched, rule.fired) == (1, 1)
    assert s3.rules == [rule]
    s3.clear_faults()
    s3.reset_log()
    assert s3.rules == [] and s3.requests == [] and s3.bytes_sent("b", "k") == 0


# --------------------------------------------------------------------------- API, script, CLI


def test_public_api() -> None:
    assert sorted(s3pull.testing.__all__) == [
        "Fault",
        "FaultKind",
        "FaultRule",
        "FaultServer",
        "RequestRecord",
        "StoredObject",
        "generate_bytes",
        "journaled_parts",
        "kill_when_journaled",
        "page_text",
        "parse_script",
        "run_cli_measured",
        "run_cli_peaks",
        "write_pdf",
    ]


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(503, code="SlowDown", retry_after=2, times=3, skip=1),
        Fault.refuse(rst=True),
        Fault.hang(),
        Fault.headers_only(),
        Fault.stall(at_byte=10),
        Fault.drip(chunk=4, interval=0.5),
        Fault.reset(at_fraction=0.25),
        Fault.truncate(),
        Fault.extra_bytes(b"\x00\xff"),
        Fault.wrong_content_range(-3),
        Fault.missing_content_range(),
        Fault.ignore_range(),
        Fault.ignore_if_match(),
        Fault.replace(b"new", etag="abc-2"),
        Fault.delete(skip=4),
        Fault.flip_byte(at_byte=3),
        Fault.delay(1.5),
        Fault.repeat_token(),
    ],
)
def test_fault_json_round_trip(fault: Fault) -> None:
    assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at_fraction"):
        Fault.reset(at_fraction=1.5)
    with pytest.raises(ValueError, match="unknown fault fields"):
        Fault.from_dict({"kind": "hang", "bogus": 1})
    rules, refuse = parse_script(
        {
            "refuse_connections": 2,
            "faults": [
                {
                    "bucket": "b",
                    "key": "k",
                    "method": "GET",
                    "range_start": 0,
                    "fault": {"kind": "replace", "data": "text"},
                },
                {"bucket": "b", "fault": {"kind": "extra_bytes", "extra_base64": "AAE="}},
            ],
        }
    )
    assert refuse == 2
    assert rules[0].fault.data == b"text"
    assert rules[0].range_start == 0
    assert rules[1].fault.extra == b"\x00\x01"


def test_load_script(s3: FaultServer, tmp_path: Path) -> None:
    script = tmp_path / "faults.json"
    rule = {"bucket": "b", "key": "k", "fault": {"kind": "status", "status": 500, "times": 1}}
    script.write_text(json.dumps([rule]))
    s3.load_script(script)
    assert call(s3, "/b/k").status == 500
    assert call(s3, "/b/k").status == 200


async def test_async_context_manager() -> None:
    async with FaultServer() as s3:
        s3.put_object("b", "k", b"async")
        s3.add_fault("b", "k", Fault.delay(0.05))
        reader, writer = await asyncio.open_connection("127.0.0.1", s3.port)
        writer.write(b"GET /b/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert data.endswith(b"\r\n\r\nasync")
    assert s3.errors == []


def test_subprocess_cli(tmp_path: Path) -> None:
    (tmp_path / "root" / "bkt" / "dir").mkdir(parents=True)
    (tmp_path / "root" / "bkt" / "dir" / "f.bin").write_bytes(DATA)
    script = tmp_path / "faults.json"
    script.write_text(
        json.dumps(
            {
                "faults": [
                    {
                        "bucket": "bkt",
                        "key": "dir/f.bin",
                        "fault": {"kind": "status", "status": 503, "times": 1},
                    }
                ]
            }
        )
    )
    log = tmp_path / "requests.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [
        sys.executable,
        "-m",
        "s3pull.testing",
        "--port",
        "0",
        "--root",
        str(tmp_path / "root"),
        "--script",
        str(script),
        "--log",
        str(log),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("endpoint_url=http://127.0.0.1:")
            port = int(line.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/bkt/dir/f.bin")
            assert conn.getresponse().read() and conn.sock is not None
            conn.request("GET", "/bkt/dir/f.bin")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, DATA)
            conn.close()
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["status"], r["body_bytes_sent"]) for r in records][-1] == (200, len(DATA))
    assert records[0]["status"] == 503 and records[0]["faults"] == ["status"]


@pytest.fixture(scope="module")
def shared() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
        errors = server.errors
    assert errors == []
