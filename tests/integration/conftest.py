"""Real servers for the integration tier: moto's S3 API server, s3rver (a second,
independent S3 implementation, from npm) and a Range-capable file server, each
started by the suite on a free loopback port and stopped after."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ..support import free_port


@dataclass
class MotoServer:
    endpoint_url: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")


@contextmanager
def _server_process(
    name: str, argv: list[str], ready_url: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run ``argv`` until the block ends; enter once ``ready_url`` answers (any status)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers: an error status is still an answer
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.1)  # nothing to await: the process only opens a port
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 API server in a subprocess (fine for correctness; slow for big objects)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _server_process("moto server", argv, f"{url}/moto-api/"):
        yield MotoServer(url)


#: Where ``make test`` installs s3rver (``npm install --prefix .node``).
S3RVER_HOME = Path(__file__).resolve().parents[2] / ".node" / "node_modules" / "s3rver"


@pytest.fixture(scope="session")
def s3rver_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """s3rver (npm) on a loopback port, its objects in a temp directory; its URL."""
    script = S3RVER_HOME / "bin" / "s3rver.js"
    if not script.exists():
        pytest.skip("s3rver is not installed: `make test` installs it into .node/")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path_factory.mktemp("s3rver")
    argv = ["node", str(script), "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "-s"]
    # Node 20's OpenSSL 3 refuses the MD4 that s3rver's ListObjectsV2 tokens
    # use (it answers 500) unless the legacy provider is loaded.
    env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
    with _server_process("s3rver", argv, f"{url}/", env):
        yield url


@dataclass
class S3Store:
    """One S3 API server and what it implements, for the interop tests.

    Attributes:
        name, version: the server, as the README's compatibility table names it.
        endpoint_url: where it listens.
        access_key, secret_key: credentials it accepts.
        bucket: a fresh bucket for the test.
        versioning, checksums: whether it implements object versions and the
            additional (CRC/SHA) checksums.
        checks_credentials: whether it refuses a wrong secret key.
        max_key_length: the longest key it can store.
    """

    name: str
    version: str
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str = ""
    versioning: bool = True
    checksums: bool = True
    checks_credentials: bool = True
    max_key_length: int = 1024

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            # No aws-chunked upload bodies: s3rver would store their framing.
            config=Config(request_checksum_calculation="when_required"),
        )

    def put(self, key: str, body: bytes, bucket: str | None = None) -> None:
        self.client().put_object(Bucket=bucket or self.bucket, Key=key, Body=body)


def _moto_store(request: pytest.FixtureRequest) -> S3Store:
    server: MotoServer = request.getfixturevalue("moto_server")
    return S3Store(
        "moto server",
        importlib.metadata.version("moto"),
        server.endpoint_url,
        "testing",
        "testing",
        checks_credentials=False,
    )


def _s3rver_store(request: pytest.FixtureRequest) -> S3Store:
    url: str = request.getfixturevalue("s3rver_server")
    version = json.loads((S3RVER_HOME / "package.json").read_text())["version"]
    # s3rver keeps each object as a file named by its key (plus metadata
    # files beside it): a key longer than a file name may be (255 bytes) crashes it.
    return S3Store(
        "s3rver",
        version,
        url,
        "S3RVER",
        "S3RVER",
        versioning=False,
        checksums=False,
        max_key_length=200,
    )


_STORES: dict[str, Callable[[pytest.FixtureRequest], S3Store]] = {
    "moto": _moto_store,
    "s3rver": _s3rver_store,
}


@pytest.fixture(params=sorted(_STORES))
def s3_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """Each S3 API server in turn, with a fresh bucket and its credentials in
    the environment (for the API and for CLI subprocesses alike)."""
    store = _STORES[request.param](request)
    store.bucket = f"interop-{next(_bucket_counter)}-{os.getpid()}"
    store.client().create_bucket(Bucket=store.bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", store.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", store.endpoint_url)
    return store


_bucket_counter = iter(range(1_000_000))


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    """A fresh bucket for one test."""
    name = f"test-bucket-{next(_bucket_counter)}-{os.getpid()}"
    moto_server.client().create_bucket(Bucket=name)
    return name


class RangeFileServer:
    """aiohttp's static file handler (sendfile, Range, ETag) on a loopback port,
    in a background thread. It serves ``root``."""

    def __init__(self, root: Path, *, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        # /redirect/N/PATH answers 302 to /redirect/N-1/PATH, and /redirect/0/PATH
        # to /PATH (with the query kept), as presigned-URL front ends do.
        app.router.add_get("/redirect/{hops:\\d+}/{path:.+}", _redirect)
        app.router.add_static("/", self.root)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._tls)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> RangeFileServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("file server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _redirect(request: web.Request) -> web.Response:
    hops = int(request.match_info["hops"])
    path = request.match_info["path"]
    target = f"/redirect/{hops - 1}/{path}" if hops else f"/{path}"
    if request.query_string:
        target += f"?{request.query_string}"
    raise web.HTTPFound(target)


@pytest.fixture(scope="session")
def file_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def file_server(file_root: Path) -> Iterator[RangeFileServer]:
    with RangeFileServer(file_root) as server:
        yield server
