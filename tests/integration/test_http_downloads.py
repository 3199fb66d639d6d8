"""HTTP(S) sources against a real Range-capable file server, and cleanup after
errors and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3pull
from s3pull import AsyncClient, Client, TransferConfig

from ..support import leftovers, pattern
from .conftest import RangeFileServer

MiB = 1024 * 1024
SECRET = "Zq7SECRETsignature0123456789"


@pytest.fixture
def served(file_root: Path, request: pytest.FixtureRequest) -> Path:
    """A per-test directory under the file server's root."""
    directory = file_root / request.node.name.replace("[", "_").replace("]", "")
    directory.mkdir()
    return directory


@pytest.mark.parametrize(
    ("name", "path"),
    [
        # pasted as a user might: a space and a non-ASCII letter, unencoded
        ("a b é.bin", "{dir}/a b é.bin"),
        # two 302s before the file, followed again for every part
        ("moved.bin", "redirect/2/{dir}/moved.bin?X-Amz-Signature=" + SECRET),
    ],
    ids=["unencoded", "redirected"],
)
def test_http_urls_that_need_care_download_every_part(
    file_server: RangeFileServer, served: Path, tmp_path: Path, name: str, path: str
) -> None:
    data = pattern(5 * MiB + 7, seed=11)
    (served / name).write_bytes(data)
    url = f"{file_server.url}/{path.format(dir=served.name)}"
    config = TransferConfig(part_size=1 * MiB, concurrency=3)
    with Client(config=config, subscribers=[]) as client:
        result = client.download_file(url, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert result.attempts == 6  # six parts, no retries (the probe of byte 0 is not one)


def test_http_redirect_loops_are_an_error(
    file_server: RangeFileServer, served: Path, tmp_path: Path
) -> None:
    (served / "far.bin").write_bytes(b"x" * 10)
    url = f"{file_server.url}/redirect/12/{served.name}/far.bin"
    with Client(subscribers=[]) as client, pytest.raises(s3pull.S3PullError) as caught:
        client.download_file(url, tmp_path / "far.bin")
    assert "redirect" in str(caught.value).lower()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("size", [0, 1, 2 * MiB - 1, 2 * MiB + 1, 7 * MiB + 3])
def test_http_bytes_are_identical(
    file_server: RangeFileServer, served: Path, tmp_path: Path, size: int
) -> None:
    data = pattern(size, seed=size + 1)
    (served / "obj.bin").write_bytes(data)
    url = f"{file_server.url}/{served.name}/obj.bin?X-Amz-Signature={SECRET}"
    config = TransferConfig(part_size=1 * MiB, concurrency=3)
    with Client(config=config, subscribers=[]) as client:
        result = client.download_file(url, tmp_path)
    assert (tmp_path / "obj.bin").read_bytes() == data
    assert SECRET not in result.source and "REDACTED" in result.source
    assert leftovers(tmp_path) == ["obj.bin"]


def test_http_errors_never_show_the_signature(
    file_server: RangeFileServer, served: Path, tmp_path: Path
) -> None:
    query = f"X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}"
    url = f"{file_server.url}/{served.name}/missing.bin?{query}"
    with Client(subscribers=[]) as client, pytest.raises(s3pull.NotFoundError) as caught:
        client.download_file(url, tmp_path / "x")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert leftovers(tmp_path) == []


async def test_cancellation_mid_download_leaves_nothing(
    file_server: RangeFileServer, served: Path, tmp_path: Path
) -> None:
    (served / "big.bin").write_bytes(pattern(24 * MiB, seed=5))
    destination = tmp_path / "big.bin"
    destination.write_bytes(b"old")
    halfway = asyncio.Event()

    class Trigger(s3pull.Subscriber):
        def on_progress(self, source: str, done: int, total: int) -> None:
            if done >= 4 * MiB:
                halfway.set()

    config = TransferConfig(part_size=1 * MiB, concurrency=2)
    async with AsyncClient(config=config, subscribers=[Trigger()]) as client:
        task = asyncio.create_task(
            client.download_file(f"{file_server.url}/{served.name}/big.bin", destination)
        )
        await asyncio.wait_for(halfway.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert destination.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["big.bin"]


def test_object_deleted_mid_download_fails_cleanly(
    file_server: RangeFileServer, served: Path, tmp_path: Path
) -> None:
    source_file = served / "vanishing.bin"
    source_file.write_bytes(pattern(8 * MiB, seed=6))

    class Deleter(s3pull.Subscriber):
        def on_progress(self, source: str, done: int, total: int) -> None:
            source_file.unlink(missing_ok=True)

    config = TransferConfig(part_size=1 * MiB, concurrency=1)
    url = f"{file_server.url}/{served.name}/vanishing.bin"
    with (
        Client(config=config, subscribers=[Deleter()]) as client,
        pytest.raises(s3pull.NotFoundError) as caught,
    ):
        client.download_file(url, tmp_path)
    assert caught.value.range is not None and caught.value.range[0] > 0
    assert leftovers(tmp_path) == []


class _ClosingRangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``DATA`` with Range support and ``Connection: close`` on every answer."""

    protocol_version = "HTTP/1.1"
    data = b""

    def do_GET(self) -> None:
        first, last = 0, len(self.data) - 1
        status = 200
        if match := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
            first = int(match.group(1))
            last = min(int(match.group(2) or last), last)
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("ETag", '"closing"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(self.data)}")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(self.data[first : last + 1])
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a loopback port in a thread; yields an object's URL there."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/obj.bin"
    finally:
        server.shutdown()
        server.server_close()


def test_answers_that_close_the_connection_cost_no_retry(tmp_path: Path) -> None:
    data = pattern(3 * MiB + 1, seed=3)
    _ClosingRangeHandler.data = data
    config = TransferConfig(part_size=1 * MiB, concurrency=2)
    with _serving(_ClosingRangeHandler) as url, Client(config=config, subscribers=[]) as client:
        result = client.download_file(url, tmp_path / "obj.bin")
    assert (tmp_path / "obj.bin").read_bytes() == data
    # The probe and the parts, each on a new connection: none was reused
    # after the server said it would close it.
    assert result.attempts == 4


class _LengthlessRangeHandler(http.server.BaseHTTPRequestHandler):
    """Answers Range GETs with 206 and no Content-Length (the body ends with
    the connection); the first answer for bytes from 1 MiB stops at ``STOP``
    and holds the connection, as a stalled server does; ``STOP`` is not a
    multiple of the client's 256 KiB read buffer, so a read that waits to
    fill it would lose the bytes before the stall."""

    STOP = 300 * 1024

    protocol_version = "HTTP/1.1"
    data = b""
    ranges: list[str] = []  # noqa: RUF012 - one test's record
    stalled = threading.Event()

    def do_GET(self) -> None:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        assert match is not None
        first = int(match.group(1))
        last = min(int(match.group(2) or len(self.data) - 1), len(self.data) - 1)
        type(self).ranges.append(f"{first}-{last}")
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(self.data)}")
        self.send_header("ETag", '"lengthless"')
        self.send_header("Connection", "close")
        self.end_headers()
        body = self.data[first : last + 1]
        if first == MiB and not self.stalled.is_set():
            self.stalled.set()
            self.wfile.write(body[: self.STOP])
            self.wfile.flush()
            time.sleep(1.5)  # past the client's read timeout
            return
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_stalled_body_without_content_length_resumes_where_it_stopped(tmp_path: Path) -> None:
    data = pattern(2 * MiB, seed=9)
    _LengthlessRangeHandler.data = data
    config = TransferConfig(
        part_size=1 * MiB,
        concurrency=1,
        timeouts=s3pull.Timeouts(5, read=0.5),
        retry=s3pull.RetryConfig(backoff_base=0.001, backoff_cap=0.001),
    )
    with _serving(_LengthlessRangeHandler) as url, Client(config=config, subscribers=[]) as client:
        client.download_file(url, tmp_path / "obj.bin")
    assert (tmp_path / "obj.bin").read_bytes() == data
    # The retry asks for what was missing, not for the whole part again.
    resumed = MiB + _LengthlessRangeHandler.STOP
    assert f"{resumed}-{2 * MiB - 1}" in _LengthlessRangeHandler.ranges
