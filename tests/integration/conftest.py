"""Real servers for the integration tier: moto's S3 API server and a Range-capable
file server, each started by the suite on a free loopback port and stopped after."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 API server in a subprocess (fine for correctness; slow for big objects)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield MotoServer(url)
    finally:
        process.terminate()
        process.wait(timeout=10)


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
