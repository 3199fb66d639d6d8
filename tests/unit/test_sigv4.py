"""SigV4 signing: byte for byte what botocore's S3SigV4Auth produces."""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import given
from hypothesis import strategies as st

from s3pull.transport import S3Endpoint
from s3pull.transport._sigv4 import Credentials, sign

URL = "http://127.0.0.1:9/b/k"
NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


def botocore_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    credentials: Credentials,
    region: str,
    now: datetime.datetime = NOW,
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    frozen = BotocoreCredentials(*credentials)
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        S3SigV4Auth(frozen, "s3", region).add_auth(request)
    return dict(request.headers.items())


KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


@given(
    key=KEYS,
    method=st.sampled_from(["GET", "HEAD"]),
    scheme=st.sampled_from(["http", "https"]),
    port=st.sampled_from(["", ":80", ":443", ":9000"]),
    token=st.one_of(st.none(), st.text("abcXYZ019+/=", min_size=1, max_size=20)),
    range_=st.one_of(st.none(), st.tuples(st.integers(0, 10**12), st.integers(0, 10**12))),
    version=st.one_of(st.none(), st.text("abcXYZ019._-", min_size=1, max_size=12)),
)
def test_same_headers_as_botocore(
    key: str,
    method: str,
    scheme: str,
    port: str,
    token: str | None,
    range_: tuple[int, int] | None,
    version: str | None,
) -> None:
    endpoint = S3Endpoint(f"{scheme}://Store.Example{port}", region="eu-west-3")
    url = endpoint.url("bucket", key, {"versionId": version} if version else None)
    headers = {"Accept-Encoding": "identity", "If-Match": '"abc"'}
    if range_ is not None:
        headers["Range"] = f"bytes={range_[0]}-{range_[1]}"
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    ours = sign(method, url, headers, credentials, "eu-west-3", now=NOW)
    assert ours == botocore_headers(method, url, headers, credentials, "eu-west-3")


def test_each_day_region_and_secret_sign_with_their_own_key() -> None:
    # The day's signing key is cached: one kept for another day, region or
    # secret would sign every later request wrongly.
    next_day = NOW + datetime.timedelta(days=1)
    for now, region, secret in [
        (NOW, "eu-west-3", "secret-1"),
        (next_day, "eu-west-3", "secret-1"),
        (next_day, "us-east-1", "secret-1"),
        (next_day, "us-east-1", "secret-2"),
        (NOW, "eu-west-3", "secret-1"),
    ]:
        credentials = Credentials("AKIDEXAMPLE", secret)
        ours = sign("GET", URL, {}, credentials, region, now=now)
        assert ours == botocore_headers("GET", URL, {}, credentials, region, now)


def test_listing_query_is_canonicalised_like_botocore() -> None:
    url = "https://s3.us-east-1.amazonaws.com/b?prefix=a%2Fb&list-type=2&continuation-token=x%3D"
    credentials = Credentials("AK", "SK")
    headers = {"x-amz-checksum-mode": "ENABLED"}
    ours = sign("GET", url, headers, credentials, "us-east-1", now=NOW)
    assert ours == botocore_headers("GET", url, headers, credentials, "us-east-1")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return monkeypatch


async def test_environment_credentials_skip_botocore(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AWS_SESSION_TOKEN", "TOKEN")
    endpoint = S3Endpoint("http://127.0.0.1:9")
    with mock.patch("botocore.session.Session", side_effect=AssertionError("botocore used")):
        await endpoint.resolve()
    assert endpoint.region == "ap-south-1"
    headers = endpoint.signed_headers("GET", "http://127.0.0.1:9/b/k", {}, "b")
    assert headers["X-Amz-Security-Token"] == "TOKEN"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")


@pytest.mark.parametrize("default_region", [True, False])
async def test_aws_region_wins_and_needs_no_botocore(
    clean_env: pytest.MonkeyPatch, default_region: bool
) -> None:
    if not default_region:
        clean_env.delenv("AWS_DEFAULT_REGION")  # AWS_REGION alone is enough
    clean_env.setenv("AWS_REGION", "eu-north-1")
    endpoint = S3Endpoint("http://127.0.0.1:9")
    with mock.patch("botocore.session.Session", side_effect=AssertionError("botocore used")):
        await endpoint.resolve()
    assert endpoint.region == "eu-north-1"


async def test_aws_region_applies_to_the_chain_too(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AWS_REGION", "eu-north-1")
    clean_env.setenv("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T00:00:00Z")  # needs the chain
    endpoint = S3Endpoint("http://127.0.0.1:9")
    await endpoint.resolve()
    assert endpoint.region == "eu-north-1"


@pytest.mark.parametrize(
    "change",
    [
        ("AWS_PROFILE", "other"),
        ("AWS_CREDENTIAL_EXPIRATION", "2030-01-01T00:00:00Z"),
        ("AWS_DEFAULT_REGION", None),
    ],
)
async def test_the_chain_decides_otherwise(
    clean_env: pytest.MonkeyPatch, change: tuple[str, str | None]
) -> None:
    name, value = change
    if value is None:
        clean_env.delenv(name)
    else:
        clean_env.setenv(name, value)
    endpoint = S3Endpoint("http://127.0.0.1:9")
    with (
        mock.patch("botocore.session.Session", side_effect=RuntimeError("chain")),
        pytest.raises(RuntimeError, match="chain"),
    ):
        await endpoint.resolve()


async def test_botocore_credentials_sign_the_same(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.delenv("AWS_DEFAULT_REGION")  # forces the chain, which finds the env keys
    endpoint = S3Endpoint("http://127.0.0.1:9")
    await endpoint.resolve()
    assert not isinstance(endpoint._credentials, Credentials)
    with mock.patch("s3pull.transport._sigv4.time.time", return_value=NOW.timestamp()):
        ours = endpoint.signed_headers("GET", "http://127.0.0.1:9/b/k", {"Range": "bytes=0-1"}, "b")
    theirs = botocore_headers(
        "GET",
        "http://127.0.0.1:9/b/k",
        {"Range": "bytes=0-1"},
        Credentials("AK", "SK"),
        "us-east-1",
    )
    assert ours == theirs


def test_the_clock_signs_each_second_with_its_own_date() -> None:
    # X-Amz-Date is kept for the second it was made in: a request of the
    # next second (or the next day) must carry, and be signed with, its own.
    credentials = Credentials("AKIDEXAMPLE", "secret")
    for moment in (NOW, NOW + datetime.timedelta(seconds=1), NOW + datetime.timedelta(days=1)):
        with mock.patch("s3pull.transport._sigv4.time.time", return_value=moment.timestamp()):
            ours = sign("GET", URL, {}, credentials, "eu-west-3")
        assert ours == botocore_headers("GET", URL, {}, credentials, "eu-west-3", moment)
