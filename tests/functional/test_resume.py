"""Crash resume, restarts after a checksum mismatch or a changed object, the
free-space preflight, credential refresh and ``s3pull clean``, against the
fault-injecting server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import s3pull
from s3pull import Client, RetryConfig, Subscriber, TransferConfig
from s3pull.testing import Fault, FaultServer, kill_when_journaled

from ..support import leftovers, pattern

MiB = 1024 * 1024
FAST_RETRIES = RetryConfig(backoff_base=0.001, backoff_cap=0.01)
CONFIG = TransferConfig(part_size=1 * MiB, concurrency=4, retry=FAST_RETRIES)


def _cp(s3: FaultServer, destination: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "s3pull",
        "cp",
        "s3://bucket/big.bin",
        str(destination),
        "--endpoint-url",
        s3.endpoint_url,
        "--part-size",
        "1MiB",
        "--concurrency",
        "4",
        *extra,
    ]


def _get_bytes(s3: FaultServer) -> int:
    return sum(r.body_bytes_sent for r in s3.requests if r.method == "GET")


def _kill_mid_download(s3: FaultServer, tmp_path: Path, size: int) -> dict[int, Any]:
    """Run the CLI until the first half of the object is journaled, then SIGKILL it.

    The second half hangs at the server, so the first half is all it can get.
    """
    s3.add_fault("bucket", "big.bin", Fault.hang(), method="GET", min_range_start=size // 2)
    kept = kill_when_journaled(
        _cp(s3, tmp_path / "big.bin", "-q"), tmp_path, parts=(size // 2) // MiB
    )
    assert len(list(tmp_path.glob(".big.bin.s3pull-*.part"))) == 1
    s3.clear_faults()
    s3.reset_log()
    return kept


def test_a_killed_download_resumes_with_only_the_missing_bytes(
    s3: FaultServer, tmp_path: Path
) -> None:
    size = 16 * MiB
    data = pattern(size, seed=11)
    s3.put_object("bucket", "big.bin", data, checksum_algorithm="CRC32C")
    kept = _kill_mid_download(s3, tmp_path, size)
    assert len(kept) >= 8

    done = subprocess.run(
        _cp(s3, tmp_path / "big.bin", "--json"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "big.bin").read_bytes() == data
    assert _get_bytes(s3) == size - len(kept) * MiB  # only what the journal did not hold
    assert f'"resumed": {len(kept) * MiB}' in done.stdout
    assert '"verified": "CRC32C"' in done.stdout  # the restored part CRCs still add up
    assert leftovers(tmp_path) == ["big.bin"]


def test_a_killed_batch_resumes_a_nested_object(s3: FaultServer, tmp_path: Path) -> None:
    # The journal and the temp file are found again through the directory
    # the batch opens under its destination, one component at a time.
    size = 8 * MiB
    data = pattern(size, seed=13)
    s3.put_object("bucket", "logs/deep/dir/big.bin", data, checksum_algorithm="CRC32C")
    s3.add_fault(
        "bucket", "logs/deep/dir/big.bin", Fault.hang(), method="GET", min_range_start=size // 2
    )
    out = tmp_path / "out"
    command = _cp(s3, out, "--recursive", "-q")
    command[command.index("s3://bucket/big.bin")] = "s3://bucket/logs/"
    kept = kill_when_journaled(command, out / "deep" / "dir", parts=(size // 2) // MiB)
    s3.clear_faults()
    s3.reset_log()

    again = [*command[:-1], "--json"]  # without -q
    done = subprocess.run(again, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (out / "deep" / "dir" / "big.bin").read_bytes() == data
    sent = sum(r.body_bytes_sent for r in s3.requests if r.key == "logs/deep/dir/big.bin")
    assert sent == size - len(kept) * MiB
    assert f'"resumed": {len(kept) * MiB}' in done.stdout
    assert leftovers(out / "deep" / "dir") == ["big.bin"]


def test_a_changed_object_after_a_crash_is_fetched_from_zero(
    s3: FaultServer, tmp_path: Path
) -> None:
    size = 8 * MiB
    s3.put_object("bucket", "big.bin", pattern(size, seed=1))
    _kill_mid_download(s3, tmp_path, size)
    changed = pattern(size, seed=2)
    s3.put_object("bucket", "big.bin", changed)

    done = subprocess.run(_cp(s3, tmp_path / "big.bin", "-q"), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "big.bin").read_bytes() == changed
    assert _get_bytes(s3) == size
    assert leftovers(tmp_path) == ["big.bin"]


def test_resume_can_be_turned_off(s3: FaultServer, tmp_path: Path) -> None:
    size = 4 * MiB
    s3.put_object("bucket", "big.bin", pattern(size))
    config = TransferConfig(part_size=1 * MiB, resume=False)

    class Peek(Subscriber):
        def __init__(self) -> None:
            self.journals: list[str] = []

        def on_progress(self, source: str, done: int, total: int) -> None:
            self.journals += [p.name for p in tmp_path.glob(".*.journal")]

    peek = Peek()
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[peek]) as client:
        client.download_file("s3://bucket/big.bin", tmp_path / "big.bin")
    assert peek.journals == []


def test_a_checksum_mismatch_is_retried_once_from_zero(s3: FaultServer, tmp_path: Path) -> None:
    data = pattern(3 * MiB + 5, seed=3)
    s3.put_object("bucket", "obj.bin", data, checksum_algorithm="SHA256")
    s3.add_fault("bucket", "obj.bin", Fault.flip_byte(times=1), method="GET", ranged=True)
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://bucket/obj.bin", tmp_path / "obj.bin")
    assert (tmp_path / "obj.bin").read_bytes() == data
    assert result.verified == "SHA256"
    gets = [r for r in s3.requests if r.method == "GET"]
    assert len(gets) == 8  # 4 parts, twice
    assert result.attempts == 8  # every GET: the restart knows the object already


def test_a_persistent_checksum_mismatch_is_an_integrity_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object("bucket", "obj.bin", pattern(2 * MiB), checksum_algorithm="CRC32")
    s3.add_fault("bucket", "obj.bin", Fault.flip_byte(), method="GET")
    destination = tmp_path / "obj.bin"
    destination.write_bytes(b"old")
    with (
        Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client,
        pytest.raises(s3pull.IntegrityError, match="CRC32 mismatch"),
    ):
        client.download_file("s3://bucket/obj.bin", destination)
    assert len([r for r in s3.requests if r.method == "GET"]) == 4  # tried twice, not forever
    assert destination.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["obj.bin"]


@pytest.mark.parametrize("variant", ["412 under If-Match", "If-Match ignored"])
def test_a_changed_object_restarts_once_when_asked(
    s3: FaultServer, tmp_path: Path, variant: str
) -> None:
    s3.put_object("bucket", "obj.bin", pattern(4 * MiB, seed=5))
    new = pattern(4 * MiB, seed=6)
    s3.add_fault("bucket", "obj.bin", Fault.replace(new), method="GET", min_range_start=1)
    if variant == "If-Match ignored":
        s3.add_fault("bucket", "obj.bin", Fault.ignore_if_match(), method="GET")
    config = TransferConfig(part_size=1 * MiB, concurrency=1, on_change="restart")
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        result = client.download_file("s3://bucket/obj.bin", tmp_path / "obj.bin")
    assert (tmp_path / "obj.bin").read_bytes() == new
    assert result.etag == f'"{s3.get_object("bucket", "obj.bin").etag}"'
    assert [r.method for r in s3.requests].count("HEAD") == 1  # asked again what it is now
    assert leftovers(tmp_path) == ["obj.bin"]


def test_a_changed_object_fails_by_default(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "obj.bin", pattern(4 * MiB, seed=5))
    s3.add_fault("bucket", "obj.bin", Fault.replace(), method="GET", min_range_start=1)
    with (
        Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client,
        pytest.raises(s3pull.ObjectChangedError),
    ):
        client.download_file("s3://bucket/obj.bin", tmp_path / "obj.bin")
    assert leftovers(tmp_path) == []


def test_an_object_that_keeps_changing_fails_after_one_restart(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object("bucket", "obj.bin", pattern(2 * MiB, seed=5))
    s3.add_fault("bucket", "obj.bin", Fault.replace(times=None), method="GET", min_range_start=1)
    config = TransferConfig(part_size=1 * MiB, concurrency=1, on_change="restart")
    with (
        Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client,
        pytest.raises(s3pull.ObjectChangedError),
    ):
        client.download_file("s3://bucket/obj.bin", tmp_path / "obj.bin")
    assert [r.method for r in s3.requests].count("HEAD") == 1
    assert leftovers(tmp_path) == []


def test_a_download_that_cannot_fit_is_refused_before_any_get(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "big.bin", pattern(2 * MiB))
    real_statvfs = os.fstatvfs

    def one_mib_free(fd: Any) -> Any:
        real = real_statvfs(fd)
        return os.statvfs_result((real.f_bsize, 4096, real.f_blocks, 256, 256, *tuple(real)[5:]))

    monkeypatch.setattr(os, "fstatvfs", one_mib_free)
    with (
        Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client,
        pytest.raises(s3pull.DiskFullError, match=r"needs 2097152 bytes, 1048576 are free"),
    ):
        client.download_file("s3://bucket/big.bin", tmp_path / "big.bin")
    assert [r.method for r in s3.requests] == ["GET"]  # its body unread
    assert leftovers(tmp_path) == []


def test_expired_credentials_are_reloaded_and_the_request_retried(
    s3: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object("bucket", "obj.bin", pattern(3 * MiB))
    s3.add_fault(
        "bucket", "obj.bin", Fault.expired_token(times=1), method="GET", range_start=1 * MiB
    )
    credentials = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials.write_text("[default]\naws_access_key_id = OLDKEY\naws_secret_access_key = s\n")

    class RotateKeys(Subscriber):
        """The credential process hands out new keys once the download has begun."""

        def on_queued(self, source: str, size: int) -> None:
            credentials.write_text(
                "[default]\naws_access_key_id = NEWKEY\naws_secret_access_key = s\n"
            )

    try:
        with Client(
            endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[RotateKeys()]
        ) as client:
            client.download_file("s3://bucket/obj.bin", tmp_path / "obj.bin")
    finally:
        credentials.unlink()
    first_part = [  # the second part: the first came with the download's first GET
        r for r in s3.requests if r.method == "GET" and r.range_header == "bytes=1048576-2097151"
    ]
    assert [r.status for r in first_part] == [403, 206]  # ExpiredToken, then fine
    assert "Credential=OLDKEY/" in first_part[0].headers["authorization"]
    assert "Credential=NEWKEY/" in first_part[1].headers["authorization"]


def test_stale_leftovers_are_removed_by_the_next_download(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "obj.bin", b"fresh")
    stale = tmp_path / ".gone.bin.s3pull-0123456789ab.part"
    recent = tmp_path / ".other.bin.s3pull-0123456789ab.part"
    for path in (stale, recent):
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        client.download_file("s3://bucket/obj.bin", tmp_path / "obj.bin")
    assert leftovers(tmp_path) == [recent.name, "obj.bin"]


def _clean(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", "clean", *args], capture_output=True, text=True, timeout=30
    )


def test_clean_removes_only_s3pull_leftovers(tmp_path: Path) -> None:
    ours = [
        tmp_path / ".a.bin.s3pull-0123456789ab.part",
        tmp_path / ".a.bin.s3pull-0123456789ab.journal",
        tmp_path / "nested" / "dir" / ".b.s3pull-abcdefabcdef.part",
    ]
    theirs = [tmp_path / "a.bin", tmp_path / "notes.part", tmp_path / ".hidden.journal"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    dry = _clean(str(tmp_path), "--dry-run")
    assert dry.returncode == 0
    assert sorted(dry.stdout.split()) == sorted(map(str, ours))
    assert all(path.exists() for path in ours)

    done = _clean(str(tmp_path))
    assert done.returncode == 0
    assert "removed 3 leftover file(s)" in done.stderr
    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in theirs)


def test_clean_respects_age_and_refuses_a_missing_directory(tmp_path: Path) -> None:
    leftover = tmp_path / ".a.bin.s3pull-0123456789ab.part"
    leftover.write_bytes(b"x")
    assert _clean(str(tmp_path), "--older-than", "1h").returncode == 0
    assert leftover.exists()
    missing = _clean(str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("s3pull: error: not a directory")
    bad = _clean(str(tmp_path), "--older-than", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGHUP, 129, "hung up"),
    ],
)
def test_signals_clean_up_and_say_so(
    s3: FaultServer, tmp_path: Path, signum: int, code: int, word: str
) -> None:
    s3.put_object("bucket", "big.bin", pattern(4 * MiB))
    s3.add_fault("bucket", "big.bin", Fault.hang(), method="GET", min_range_start=2 * MiB)
    destination = tmp_path / "big.bin"
    destination.write_bytes(b"old")
    with subprocess.Popen(_cp(s3, destination, "-q"), stderr=subprocess.PIPE, text=True) as child:
        # wait until the first parts are written, so there is a temp file to clean
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".big.bin.s3pull-*.part")):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == code
    assert stderr == f"s3pull: {word}; no partial files left\n"
    assert destination.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["big.bin"]
