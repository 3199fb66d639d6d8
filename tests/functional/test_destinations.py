"""Destinations that are not regular files, and destinations that are not local
paths at all: devices, FIFOs, symbolic links, ``-``, URLs, the empty string,
and sources that end in ``/``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from s3pull import (
    Client,
    IntegrityError,
    LocalError,
    ObjectChangedError,
    RetryConfig,
    TransferConfig,
)
from s3pull.testing import Fault, FaultServer

from ..support import pattern

MiB = 1024 * 1024
CONFIG = TransferConfig(concurrency=4, retry=RetryConfig(backoff_base=0.001, backoff_cap=0.01))
SIZE = 5 * MiB + 3


def _client(s3: FaultServer) -> Client:
    return Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[])


def _cli(
    s3: FaultServer, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args, "--endpoint-url", s3.endpoint_url],
        capture_output=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


class _FifoReader:
    """Reads a FIFO to its end in a thread, as a consumer process would."""

    def __init__(self, path: Path) -> None:
        self.data = b""
        self._thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self._thread.start()

    def _read(self, path: Path) -> None:
        with open(path, "rb") as pipe:
            self.data = pipe.read()

    def join(self) -> bytes:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the FIFO was never closed by its writer"
        return self.data


# Devices, in a private mount namespace ---------------------------------------------

# The real /dev/null must never be a test's destination: a broken download to
# it breaks the whole machine. Here /dev is a tmpfs that only this script sees.
_NAMESPACE_SCRIPT = r"""
set -o pipefail
mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 \
    && ln -s /proc/self/fd/1 /dev/stdout || exit 77
"$PYTHON" -m s3pull cp "$SRC" /dev/null --json --endpoint-url "$ENDPOINT" || exit $?
test -c /dev/null || { echo "/dev/null is no longer a character device" >&2; exit 70; }
"$PYTHON" -m s3pull cp "$SRC" /dev/stdout -q --endpoint-url "$ENDPOINT" | cat > "$OUT" \
    || exit $?
test -L /dev/stdout || { echo "/dev/stdout is no longer a link" >&2; exit 71; }
"""


def _namespace_or_skip() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not permitted here: {probe.stderr.decode().strip()}")


def test_cp_to_a_device_writes_it_in_order_and_keeps_the_device(
    s3: FaultServer, tmp_path: Path
) -> None:
    _namespace_or_skip()
    data = pattern(SIZE, seed=3)
    s3.put_object("bucket", "obj", data, checksum_algorithm="CRC32C")
    s3.add_fault("bucket", "obj", Fault.reset(at_fraction=0.5, times=2), method="GET")
    out = tmp_path / "out"
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", _NAMESPACE_SCRIPT],
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "SRC": "s3://bucket/obj",
            "ENDPOINT": s3.endpoint_url,
            "OUT": str(out),
        },
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs on /dev or mknod: {done.stderr.decode().strip()}")
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert (result["path"], result["bytes"], result["verified"]) == ("/dev/null", SIZE, "CRC32C")
    # /dev/stdout, a link to the pipe: the pipe's reader got every byte, in order.
    assert out.read_bytes() == data


# FIFOs, through the library --------------------------------------------------------


def test_download_file_into_a_fifo_writes_it_in_order(s3: FaultServer, tmp_path: Path) -> None:
    data = pattern(SIZE, seed=4)
    s3.put_object("bucket", "obj", data, checksum_algorithm="CRC32C")
    s3.add_fault("bucket", "obj", Fault.reset(at_fraction=0.3, times=3), method="GET")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    with _client(s3) as client:
        result = client.download_file("s3://bucket/obj", fifo)
    assert reader.join() == data
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert (result.path, result.bytes, result.verified) == (fifo, SIZE, "CRC32C")
    assert os.listdir(tmp_path) == ["pipe"]  # no temp file beside it


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.flip_byte(at_fraction=0.5), IntegrityError),
        (Fault.replace(b"another object", skip=1), ObjectChangedError),
    ],
    ids=["checksum", "version"],
)
def test_a_fifo_gets_the_same_checks_as_a_file(
    s3: FaultServer, tmp_path: Path, fault: Fault, error: type[Exception]
) -> None:
    s3.put_object("bucket", "obj", pattern(SIZE, seed=5), checksum_algorithm="CRC32C")
    s3.add_fault("bucket", "obj", fault, method="GET")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    with _client(s3) as client, pytest.raises(error):
        client.download_file("s3://bucket/obj", fifo)
    reader.join()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_batch_never_renames_over_a_fifo(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "obj", b"data")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with _client(s3) as client:
        batch = client.download_many([("s3://bucket/obj", fifo)])
    [failure] = batch.failures
    assert isinstance(failure.error, LocalError)
    assert "is a FIFO, not a regular file: not replaced" in str(failure.error)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [r.method for r in s3.requests] == ["GET"]  # refused before its body is read


def test_a_socket_is_refused(s3: FaultServer, tmp_path: Path) -> None:
    import socket

    s3.put_object("bucket", "obj", b"data")
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with _client(s3) as client, pytest.raises(LocalError, match="is a socket"):
            client.download_file("s3://bucket/obj", path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# Symbolic links ---------------------------------------------------------------------


def test_a_link_is_followed_and_its_target_replaced(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "obj", b"new bytes")
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "file.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to("real/file.bin")
    dangling = tmp_path / "dangling.bin"
    dangling.symlink_to("real/made.bin")
    with _client(s3) as client:
        result = client.download_file("s3://bucket/obj", link)
        made = client.download_file("s3://bucket/obj", dangling)
    assert link.is_symlink() and os.readlink(link) == "real/file.bin"
    assert target.read_bytes() == b"new bytes"
    assert result.path == target
    assert dangling.is_symlink()
    assert made.path == tmp_path / "real" / "made.bin"
    assert made.path.read_bytes() == b"new bytes"


# Destinations that are not local paths ----------------------------------------------


@pytest.mark.parametrize(
    "destination",
    ["s3://bucket/k2", "https://example.com/k", "http://me:hush@h/k?X-Amz-Signature=hush"],
)
def test_a_url_destination_is_a_usage_error(
    s3: FaultServer, tmp_path: Path, destination: str
) -> None:
    s3.put_object("bucket", "obj", b"data")
    done = _cli(s3, "cp", "s3://bucket/obj", destination, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert err.startswith("s3pull: error: the destination") and "is a URL" in err
    assert len(err.splitlines()) == 1
    assert "hush" not in err
    assert list(tmp_path.iterdir()) == []
    recursive = _cli(s3, "cp", "-r", "s3://bucket/", destination, cwd=tmp_path)
    assert recursive.returncode == 2, recursive.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_library_refuses_a_url_or_empty_destination(s3: FaultServer) -> None:
    from s3pull import ConfigError

    s3.put_object("bucket", "obj", b"data")
    with _client(s3) as client:
        for destination in ("s3://bucket/k2", ""):
            with pytest.raises(ConfigError):
                client.download_file("s3://bucket/obj", destination)
    assert s3.requests == []


def test_an_empty_destination_is_a_usage_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "obj", b"data")
    done = _cli(s3, "cp", "s3://bucket/obj", "", cwd=tmp_path)
    assert done.returncode == 2
    assert b"the destination is empty" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_dash_is_stdout(s3: FaultServer, tmp_path: Path) -> None:
    data = pattern(SIZE, seed=6)
    s3.put_object("bucket", "obj", data, checksum_algorithm="CRC32C")
    done = _cli(s3, "cp", "s3://bucket/obj", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == data
    assert list(tmp_path.iterdir()) == []
    with_json = _cli(s3, "cp", "s3://bucket/obj", "-", "--json", cwd=tmp_path)
    assert with_json.returncode == 2
    assert with_json.stdout == b""


# Sources that end in "/" ------------------------------------------------------------


@pytest.mark.parametrize("marker", [True, False], ids=["marker", "prefix"])
def test_a_trailing_slash_source_hints_at_recursive(
    s3: FaultServer, tmp_path: Path, marker: bool
) -> None:
    s3.put_object("bucket", "dir/a.txt", b"a")
    if marker:
        s3.put_object("bucket", "dir/", b"")
    done = _cli(s3, "cp", "s3://bucket/dir/", f"{tmp_path}/y/")
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "cp --recursive" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "y").exists()
