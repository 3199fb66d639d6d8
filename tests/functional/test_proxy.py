"""Requests really go through HTTP_PROXY, and NO_PROXY really bypasses it.

The fault server plays the proxy: the endpoint's host does not resolve, so
a download can only succeed if the request went to the proxy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from s3pull import Client, RetryConfig, TransferConfig, TransferError
from s3pull.testing import FaultServer

UNREACHABLE = "http://s3.proxied.invalid:9"


def test_requests_go_through_the_proxy(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "k.bin", b"through the proxy")
    monkeypatch.setenv("HTTP_PROXY", s3.endpoint_url)
    with Client(endpoint_url=UNREACHABLE, subscribers=[]) as client:
        client.download_file("s3://bucket/k.bin", tmp_path / "k.bin")
        batch = client.download_prefix("s3://bucket/", tmp_path / "all")
    assert (tmp_path / "k.bin").read_bytes() == b"through the proxy"
    assert batch.ok and batch.downloaded == 1
    assert [r.method for r in s3.requests if r.key == "k.bin"] == ["GET", "GET"]


def test_no_proxy_goes_direct(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "k.bin", b"x")
    monkeypatch.setenv("HTTP_PROXY", s3.endpoint_url)
    monkeypatch.setenv("NO_PROXY", ".proxied.invalid")
    config = TransferConfig(retry=RetryConfig(max_attempts=1))
    with (
        Client(endpoint_url=UNREACHABLE, config=config, subscribers=[]) as client,
        pytest.raises(TransferError, match="cannot resolve the host name"),  # direct: DNS
    ):
        client.download_file("s3://bucket/k.bin", tmp_path / "k.bin")
    assert s3.requests == []


def test_proxy_credentials_go_with_every_request(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "k.bin", b"x" * (3 * 1024 * 1024))
    proxy = s3.endpoint_url.replace("http://", "http://user:p%40ss@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    config = TransferConfig(part_size=1024 * 1024)
    with Client(endpoint_url=UNREACHABLE, config=config, subscribers=[]) as client:
        client.download_file("s3://bucket/k.bin", tmp_path / "k.bin")
    requests = [r for r in s3.requests if r.key == "k.bin"]
    assert [r.method for r in requests] == ["GET", "GET", "GET"]
    # user:p@ss, from the percent-encoded URL
    assert {r.headers.get("proxy-authorization") for r in requests} == {"Basic dXNlcjpwQHNz"}
