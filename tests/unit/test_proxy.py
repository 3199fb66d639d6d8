"""Proxies come from HTTP(S)_PROXY / NO_PROXY, resolved once per origin."""

from __future__ import annotations

import pytest
from yarl import URL

from s3pull import TransferConfig
from s3pull.transport import S3Endpoint, Transport


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Transport:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.corp.example")
    return Transport(TransferConfig(), S3Endpoint(None, region="us-east-1"))


def test_https_origins_use_the_proxy_with_its_credentials(transport: Transport) -> None:
    proxy, auth = transport.proxy_for(URL("https://bucket.s3.us-east-1.amazonaws.com/key"))
    assert proxy == URL("http://proxy.internal:3128")
    assert auth is not None and (auth.login, auth.password) == ("user", "secret")


@pytest.mark.parametrize(
    "url", ["https://localhost:9000/b/k", "https://minio.corp.example/b/k", "http://h.example/x"]
)
def test_no_proxy_and_other_schemes_go_direct(transport: Transport, url: str) -> None:
    assert transport.proxy_for(URL(url)) == (None, None)


def test_the_lookup_is_made_once_per_origin(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = transport.proxy_for(URL("https://s3.amazonaws.com/b/1"))
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
    assert transport.proxy_for(URL("https://s3.amazonaws.com/b/2")) == first
