"""HTTPS end to end, against a file server with a certificate from a test CA.

Both HTTP clients are tested: http.client on worker threads (the probe of
byte 0 and the parts of a download) and the event loop's own (ordered
streams, small objects). Each must verify the server against the CA store
that ``SSL_CERT_FILE`` names, and refuse it otherwise, with a one-line error
and nothing left behind, and each must reach it through a ``CONNECT`` proxy.
"""

from __future__ import annotations

import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from s3pull import TransferConfig, TransferError
from s3pull._source import HttpSource
from s3pull.transport import S3Endpoint, Transport
from s3pull.transport._blocking import BlockingResponse
from s3pull.transport._loop import LoopResponse

from ..support import leftovers, pattern
from .conftest import RangeFileServer

MiB = 1024 * 1024
DATA = pattern(3 * MiB + 17, seed=5)
PARTS = ("--part-size", "1MiB", "--concurrency", "3")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def https_server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("tls-root")
    (root / "obj.bin").write_bytes(DATA)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with RangeFileServer(root, tls=context) as server:
        yield f"{server.url}/obj.bin"


class ConnectProxy(socketserver.ThreadingTCPServer):
    """A bare HTTP ``CONNECT`` proxy on loopback that records each tunnel's
    target and ``Proxy-Authorization``, then relays bytes both ways.

    ``server_close`` waits for every tunnel to end, so none is still open to
    the file server when the file server stops.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels: list[tuple[str, str | None]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Tunnel(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        head = self.rfile.readline().decode()
        headers = {}
        while (line := self.rfile.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        method, target, _ = head.split(" ", 2)
        self.server.tunnels.append((f"{method} {target}", headers.get("proxy-authorization")))
        host, _, port = target.rpartition(":")
        with socket.create_connection((host, int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pipe = threading.Thread(target=_relay, args=(upstream, self.connection), daemon=True)
            pipe.start()
            _relay(self.connection, upstream)
            pipe.join()


def _relay(source: socket.socket, sink: socket.socket) -> None:
    """Copy until either side closes, then tear the whole tunnel down (so the
    file server never keeps a half-closed connection after the client left)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # the other side went away: the tunnel is over
    for end in (source, sink):
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@pytest.fixture
def connect_proxy() -> Iterator[ConnectProxy]:
    proxy = ConnectProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def _cli(
    url: str, destination: Path, ca_file: Path | None, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SSL_CERT") and k.lower() not in ("https_proxy", "no_proxy")
    }
    env.update(env_vars)
    if ca_file is not None:
        env["SSL_CERT_FILE"] = str(ca_file)
    return subprocess.run(
        [sys.executable, "-m", "s3pull", "cp", url, str(destination), "-q", *PARTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_https_download_verifies_against_the_ca(
    https_server: str, ca_file: Path, tmp_path: Path
) -> None:
    done = _cli(https_server, tmp_path / "obj.bin", ca_file)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "obj.bin").read_bytes() == DATA


def test_https_through_a_connect_proxy(
    https_server: str, ca_file: Path, tmp_path: Path, connect_proxy: ConnectProxy
) -> None:
    proxy = connect_proxy.url.replace("http://", "http://me:pw@")
    done = _cli(https_server, tmp_path / "obj.bin", ca_file, HTTPS_PROXY=proxy)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "obj.bin").read_bytes() == DATA
    origin = https_server.split("/")[2]
    # The probe and the four parts, over however many kept-alive tunnels.
    assert connect_proxy.tunnels
    assert set(connect_proxy.tunnels) == {(f"CONNECT {origin}", "Basic bWU6cHc=")}


def test_https_to_an_unknown_ca_fails_in_one_line(https_server: str, tmp_path: Path) -> None:
    done = _cli(https_server, tmp_path / "obj.bin", None)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate" in lines[0].lower(), done.stderr
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("client", ["threads", "loop"])
@pytest.mark.parametrize("trusted", [True, False])
async def test_each_client_verifies_the_certificate(
    https_server: str, ca_file: Path, trusted: bool, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The transport builds its TLS context on first use, so the CA store the
    # environment names at that moment is the one it trusts.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file) if trusted else os.devnull)
    transport = Transport(TransferConfig(), S3Endpoint())
    ordered = client == "loop"  # an ordered stream is read on the loop
    try:
        if not trusted:
            with pytest.raises(TransferError, match="TLS failed"):
                async with transport.get(HttpSource(https_server), 0, 99, ordered=ordered):
                    pass
            return
        async with transport.get(HttpSource(https_server), 0, 99, ordered=ordered) as response:
            assert isinstance(response, LoopResponse if ordered else BlockingResponse)
            body = bytearray()
            await response.pump(lambda chunk, _: body.extend(chunk), 64 * 1024)
        assert bytes(body) == DATA[:100]
    finally:
        await transport.close()


async def test_the_loop_client_goes_through_a_connect_proxy(
    https_server: str, ca_file: Path, connect_proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url.replace("http://", "http://me:pw@"))
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    transport = Transport(TransferConfig(), S3Endpoint())
    try:
        for _ in range(2):
            async with transport.get(HttpSource(https_server), ordered=True) as response:
                assert isinstance(response, LoopResponse)
                body = bytearray()
                await response.pump(lambda chunk, _, body=body: body.extend(chunk), 64 * 1024)
            assert bytes(body) == DATA
    finally:
        await transport.close()
    origin = https_server.split("/")[2]
    assert connect_proxy.tunnels
    assert set(connect_proxy.tunnels) == {(f"CONNECT {origin}", "Basic bWU6cHc=")}
