"""parse_source, S3Source and HttpSource; presigned URLs never leak."""

from __future__ import annotations

import pickle
from urllib.parse import urlencode

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from s3pull import HttpSource, InvalidSourceError, S3Source, parse_source
from s3pull._source import parse_prefix

# S3 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket", "key"),
    [
        ("s3://bucket/key.bin", "bucket", "key.bin"),
        ("s3://my.bucket-1/dir/sub/file.tar.gz", "my.bucket-1", "dir/sub/file.tar.gz"),
        ("s3://Legacy_Bucket/k", "Legacy_Bucket", "k"),
        ("s3://b1/with space/ünïcode €.txt", "b1", "with space/ünïcode €.txt"),
        ("s3://bucket/a//b", "bucket", "a//b"),
    ],
)
def test_parse_s3(url: str, bucket: str, key: str) -> None:
    source = parse_source(url)
    assert source == S3Source(bucket, key)
    assert isinstance(source, S3Source)
    assert source.url == url
    assert str(source) == url
    assert source.version_id is None


def test_parse_s3_with_version() -> None:
    source = parse_source("s3://bucket/k.bin", version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH")
    assert source == S3Source("bucket", "k.bin", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH")
    assert source.redacted == "s3://bucket/k.bin (version 3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH)"


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///key",
        "s3://b/key",  # one character: not a bucket name
        "s3://-bucket/key",
        "s3://.bucket/key",
        "s3://buck et/key",
        "s3://bucket:80/key",
        "s3://" + "b" * 256 + "/key",
    ],
)
def test_invalid_bucket(url: str) -> None:
    with pytest.raises(InvalidSourceError, match="invalid bucket name"):
        parse_source(url)


def test_nul_in_key_is_refused() -> None:
    with pytest.raises(InvalidSourceError, match="NUL"):
        parse_source("s3://bucket/a\x00b")


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/"])
def test_s3_url_without_a_key_is_refused(url: str) -> None:
    with pytest.raises(InvalidSourceError, match="names a bucket, not an object"):
        parse_source(url)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bkt", "bkt", ""), ("s3://bkt/", "bkt", ""), ("s3://bkt/logs/2024", "bkt", "logs/2024")],
)
def test_prefix_urls(url: str, bucket: str, prefix: str) -> None:
    parsed = parse_prefix(url)
    assert (parsed.bucket, parsed.key) == (bucket, prefix)


@pytest.mark.parametrize("url", ["https://h/x", "s3://-bad/x", "s3://bkt/a\x00", "bucket/x"])
def test_bad_prefix_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidSourceError):
        parse_prefix(url)


@pytest.mark.parametrize(
    ("key", "name"),
    [("file.bin", "file.bin"), ("dir/sub/file.bin", "file.bin"), ("dir/sub/", "sub")],
)
def test_s3_name_is_the_last_segment(key: str, name: str) -> None:
    assert S3Source("bucket", key).name == name


# Other schemes and types -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ftp://host/file",
        "file:///etc/passwd",
        "/local/path",
        "bucket/key",
        "",
        "S3://b/k",
        "gs://b/k",
    ],
)
def test_unsupported_sources(text: str) -> None:
    with pytest.raises(InvalidSourceError, match="unsupported source"):
        parse_source(text)


def test_long_unsupported_source_is_shortened() -> None:
    with pytest.raises(InvalidSourceError) as info:
        parse_source("ftp://" + "x" * 200)
    assert "x" * 100 not in str(info.value)
    assert "..." in str(info.value)


@pytest.mark.parametrize("value", [None, 42, b"s3://b/k", ["s3://b/k"]])
def test_non_string_source(value: object) -> None:
    with pytest.raises(InvalidSourceError, match="must be a URL string"):
        parse_source(value)  # type: ignore[arg-type]


def test_parsed_sources_pass_through() -> None:
    s3 = S3Source("bucket", "k")
    http = HttpSource("https://example.com/f")
    assert parse_source(s3) is s3
    assert parse_source(http) is http
    assert parse_source(s3, version_id="v1") == S3Source("bucket", "k", "v1")


def test_version_id_only_for_s3() -> None:
    with pytest.raises(InvalidSourceError, match="version_id applies to s3://"):
        parse_source("https://example.com/f", version_id="v1")


# HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://example.com/f.bin", "https://example.com:8443/a/b.bin?x=1", "http://127.0.0.1:9000/b"],
)
def test_parse_http(url: str) -> None:
    source = parse_source(url)
    assert source == HttpSource(url)
    assert isinstance(source, HttpSource)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://", "no host"),
        ("https:///path", "no host"),
        ("http://host:abc/f", "malformed URL"),
        ("http://host:99999/f", "malformed URL"),
        ("http://[::1/f", "malformed URL"),
    ],
)
def test_malformed_http(url: str, match: str) -> None:
    with pytest.raises(InvalidSourceError, match=match):
        parse_source(url)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://h/dir/file.bin?X-Amz-Signature=abc", "file.bin"),
        ("https://h/dir/", "dir"),
        ("https://h", ""),
    ],
)
def test_http_name(url: str, name: str) -> None:
    assert HttpSource(url).name == name


PRESIGNED = (
    "https://bucket.s3.us-east-1.amazonaws.com/dir/key.bin"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLEKEYID1234%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
    "&X-Amz-Security-Token=FwoGZXIvYXdzSessionTokenValue987"
    "&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
    "&versionId=v42"
)
SECRETS = [
    "AKIAEXAMPLEKEYID1234",
    "FwoGZXIvYXdzSessionTokenValue987",
    "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
    "AWS4-HMAC-SHA256",
]


def test_presigned_url_is_redacted() -> None:
    source = HttpSource(PRESIGNED)
    assert source.redacted == (
        "https://bucket.s3.us-east-1.amazonaws.com/dir/key.bin"
        "?X-Amz-Algorithm=REDACTED&X-Amz-Credential=REDACTED"
        "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
        "&X-Amz-Security-Token=REDACTED&X-Amz-SignedHeaders=REDACTED"
        "&X-Amz-Signature=REDACTED&versionId=v42"
    )
    for text in (str(source), repr(source), f"{source}", f"{source!r}", source.redacted):
        for secret in SECRETS:
            assert secret not in text
    assert source.url == PRESIGNED  # the real URL is still what gets requested
    assert repr(source).startswith("HttpSource(")


def test_user_and_password_are_dropped() -> None:
    source = HttpSource("https://alice:hunter2@example.com:8443/f.bin#frag")
    assert source.redacted == "https://example.com:8443/f.bin"
    assert "hunter2" not in repr(source)
    assert "alice" not in str(source)


def test_pickled_source_is_still_redacted_when_shown() -> None:
    clone = pickle.loads(pickle.dumps(HttpSource(PRESIGNED)))
    assert clone == HttpSource(PRESIGNED)
    assert SECRETS[2] not in str(clone)


def test_ipv6_host_keeps_its_brackets() -> None:
    assert HttpSource("http://[::1]:8080/f?X-Amz-Signature=s").redacted == (
        "http://[::1]:8080/f?X-Amz-Signature=REDACTED"
    )


def test_unsupported_scheme_error_does_not_echo_the_signature() -> None:
    with pytest.raises(InvalidSourceError) as info:
        parse_source("htps://h/k?X-Amz-Signature=Sig0123456789abc")
    assert "Sig0123456789abc" not in str(info.value)


TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=12,
    max_size=64,
)
SECRET_PARAMS = st.sampled_from(
    ["X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "token", "sig", "Signature"]
)
PATH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./", max_size=30)
OTHER = st.lists(
    st.tuples(st.sampled_from(["X-Amz-Date", "X-Amz-Expires", "a", "b"]), st.text(max_size=10)),
    max_size=4,
)


@given(
    secret=TOKEN,
    param=SECRET_PARAMS,
    path=PATH,
    other=OTHER,
    scheme=st.sampled_from(["http", "https"]),
    port=st.none() | st.integers(min_value=1, max_value=65535),
    userinfo=st.booleans(),
    position=st.integers(min_value=0, max_value=4),
)
def test_secret_query_values_never_shown(
    secret: str,
    param: str,
    path: str,
    other: list[tuple[str, str]],
    scheme: str,
    port: int | None,
    userinfo: bool,
    position: int,
) -> None:
    # The path and public parameters are shown; make sure none of them happens
    # to contain the token, so a hit can only come from the secret.
    assume(secret not in path)
    other = [(name, value) for name, value in other if secret not in value]
    query = list(other)
    query.insert(min(position, len(query)), (param, secret))
    netloc = "example.com" + (f":{port}" if port else "")
    if userinfo:
        netloc = f"user:{secret}pw@{netloc}"
    url = f"{scheme}://{netloc}/{path}?{urlencode(query)}"
    source = parse_source(url)
    assert isinstance(source, HttpSource)
    for text in (source.redacted, str(source), repr(source), f"{source}"):
        assert secret not in text
    assert secret in source.url


def test_a_bare_query_token_is_redacted() -> None:
    assert HttpSource("https://h/f?Sig0123456789abc").redacted == "https://h/f?REDACTED"


def test_credentials_in_the_url_are_dropped() -> None:
    assert HttpSource("https://user:pw@h:8443/f").redacted == "https://h:8443/f"
