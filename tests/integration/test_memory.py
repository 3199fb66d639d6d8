"""Peak RSS of a real ``s3pull cp`` process stays within baseline + budget + slack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RangeFileServer

MiB = 1024 * 1024
BUDGET = 32 * MiB
# Allocator and interpreter noise we accept on top of the budget.
SLACK = 8 * MiB


# Runs the CLI and writes its own VmHWM (peak RSS of this exec's address space)
# at exit. wait4's ru_maxrss would not do: on Linux a child inherits the
# high-water mark of the process that forked it, here the test runner.
_REPORT_PEAK = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def _write_peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(report, "w") as out:
        out.write(kib)
atexit.register(_write_peak)
sys.argv[0] = "s3pull"
runpy.run_module("s3pull", run_name="__main__")
"""


def peak_rss(report: Path, *args: str) -> int:
    """Run ``s3pull`` and return its own peak RSS in bytes."""
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, str(report), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(report.read_text()) * 1024


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
    baseline = peak_rss(tmp_path / "rss0", "cp", tiny, str(tmp_path / "t"), *options)
    peak = peak_rss(tmp_path / "rss1", "cp", huge, str(tmp_path / "b"), *options)

    assert (tmp_path / "b").stat().st_size == size
    assert peak - baseline < BUDGET + SLACK, (
        f"peak {peak / MiB:.1f} MiB vs baseline {baseline / MiB:.1f} MiB"
    )
    big.unlink()
