"""Peak RSS of a real ``s3pull cp`` process stays within baseline + budget + slack."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull.testing._rss import run_cli_measured

from .conftest import RangeFileServer

MiB = 1024 * 1024
BUDGET = 32 * MiB
# Allocator and interpreter noise we accept on top of the budget.
SLACK = 8 * MiB


def peak_rss(*args: str, stdout: int | None = None) -> int:
    """Run ``s3pull`` and return its own peak RSS in bytes."""
    done, _, peak = run_cli_measured(args, capture=True, stdout=stdout)
    assert done.returncode == 0, done.stderr
    assert peak > 0, "the child did not report its peak RSS"
    return peak


SIZE = 12 * BUDGET  # 384 MiB


@pytest.fixture(scope="module")
def big_object(file_root: Path) -> Iterator[str]:
    """A 384 MiB file on the Range file server; yields its SHA-256."""
    big = file_root / "memory-big.bin"
    digest = hashlib.sha256()
    with big.open("wb") as handle:
        for _ in range(SIZE // (4 * MiB)):
            block = os.urandom(4 * MiB)
            digest.update(block)
            handle.write(block)
    (file_root / "memory-tiny.bin").write_bytes(b"x")
    yield digest.hexdigest()
    big.unlink()


@pytest.mark.slow
def test_download_of_12x_the_budget_stays_within_the_budget(
    file_server: RangeFileServer, big_object: str, tmp_path: Path
) -> None:
    options = ["--memory-limit", "32MiB", "-q"]
    tiny, huge = f"{file_server.url}/memory-tiny.bin", f"{file_server.url}/memory-big.bin"
    baseline = peak_rss("cp", tiny, str(tmp_path / "t"), *options)
    peak = peak_rss("cp", huge, str(tmp_path / "b"), *options)

    assert (tmp_path / "b").stat().st_size == SIZE
    assert peak - baseline < BUDGET + SLACK, (
        f"peak {peak / MiB:.1f} MiB vs baseline {baseline / MiB:.1f} MiB"
    )


@pytest.mark.slow
def test_cat_of_12x_the_budget_into_sha256sum_stays_within_the_budget(
    file_server: RangeFileServer, big_object: str
) -> None:
    options = ["--memory-limit", "32MiB", "-q"]
    tiny, huge = f"{file_server.url}/memory-tiny.bin", f"{file_server.url}/memory-big.bin"
    with subprocess.Popen(["sha256sum"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as sha:
        assert sha.stdin is not None and sha.stdout is not None
        baseline = peak_rss("cat", tiny, *options, stdout=subprocess.DEVNULL)
        done, _, peak = run_cli_measured(["cat", huge, *options], capture=True, stdout=sha.stdin)
        sha.stdin.close()
        checksum = sha.stdout.read().decode().split()[0]
    assert done.returncode == 0, done.stderr
    assert peak > 0, "the child did not report its peak RSS"
    assert checksum == big_object
    # the window (half the budget) and the GETs' buffers, nothing that grows with the size
    assert peak - baseline < BUDGET + SLACK, (
        f"peak {peak / MiB:.1f} MiB vs baseline {baseline / MiB:.1f} MiB"
    )
