"""Proxies come from HTTP(S)_PROXY / NO_PROXY, resolved once per origin."""

from __future__ import annotations

import logging
import os

import pytest

from s3pull import TransferConfig
from s3pull.transport import S3Endpoint, Transport
from s3pull.transport._proxies import Proxy, env_proxy


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Transport:
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:s%40cret@proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.corp.example")
    return Transport(TransferConfig(), S3Endpoint(None, region="us-east-1"))


def test_https_origins_use_the_proxy_with_its_credentials(transport: Transport) -> None:
    proxy = transport.proxy_for("https://bucket.s3.us-east-1.amazonaws.com/key")
    assert proxy == Proxy("proxy.internal", 3128, "user", "s@cret")
    assert proxy.url == "http://proxy.internal:3128"
    assert proxy.authorization == "Basic dXNlcjpzQGNyZXQ="  # user:s@cret


@pytest.mark.parametrize(
    "url", ["https://localhost:9000/b/k", "https://minio.corp.example/b/k", "http://h.example/x"]
)
def test_no_proxy_and_other_schemes_go_direct(transport: Transport, url: str) -> None:
    assert transport.proxy_for(url) is None


def test_the_lookup_is_made_once_per_origin(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = transport.proxy_for("https://s3.amazonaws.com/b/1")
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
    assert transport.proxy_for("https://s3.amazonaws.com/b/2") == first


def test_a_proxy_without_a_scheme_is_http(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:8080")
    assert transport.proxy_for("https://s3.amazonaws.com/b") == Proxy("proxy.internal", 8080)


def test_https_proxies_are_ignored_with_a_warning(
    transport: Transport, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.internal:443")
    with caplog.at_level(logging.WARNING, logger="s3pull"):
        assert transport.proxy_for("https://s3.amazonaws.com/b") is None
    assert "only http:// proxies" in caplog.text


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "Http_Proxy"])
def test_a_proxy_variable_is_found_whatever_its_case(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    for other in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(other)
    assert env_proxy("http", "example.com") is None  # no variable at all: direct
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert env_proxy("http", "example.com") == Proxy("proxy.example", 3128, None, None)
