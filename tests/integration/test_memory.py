"""Peak RSS of a real ``s3pull cp`` process stays within baseline + budget + slack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3pull.testing._rss import run_cli_measured

from .conftest import RangeFileServer

MiB = 1024 * 1024
BUDGET = 32 * MiB
# Allocator and interpreter noise we accept on top of the budget.
SLACK = 8 * MiB


def peak_rss(*args: str) -> int:
    """Run ``s3pull`` and return its own peak RSS in bytes."""
    done, _, peak = run_cli_measured(args, capture=True)
    assert done.returncode == 0, done.stderr
    assert peak > 0, "the child did not report its peak RSS"
    return peak


@pytest.mark.slow
def test_download_of_12x_the_budget_stays_within_the_budget(
    file_server: RangeFileServer, file_root: Path, tmp_path: Path
) -> None:
    size = 12 * BUDGET  # 384 MiB
    big = file_root / "memory-big.bin"
    with big.open("wb") as handle:
        for _ in range(size // (4 * MiB)):
            handle.write(os.urandom(4 * MiB))
    (file_root / "memory-tiny.bin").write_bytes(b"x")
    options = ["--memory-limit", "32MiB", "-q"]

    tiny, huge = f"{file_server.url}/memory-tiny.bin", f"{file_server.url}/memory-big.bin"
    baseline = peak_rss("cp", tiny, str(tmp_path / "t"), *options)
    peak = peak_rss("cp", huge, str(tmp_path / "b"), *options)

    assert (tmp_path / "b").stat().st_size == size
    assert peak - baseline < BUDGET + SLACK, (
        f"peak {peak / MiB:.1f} MiB vs baseline {baseline / MiB:.1f} MiB"
    )
    big.unlink()
