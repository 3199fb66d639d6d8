"""A PDF of hundreds of MB, downloaded and split (or read for its text) by the
``s3pull pdf`` command: the peak RSS of its whole process tree (the CLI and
its parser process) stays far below a 512 MB worker, and the same runs to
completion inside a 512 MiB memory cgroup where the machine has one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull.testing import page_text, write_pdf
from s3pull.testing._rss import run_cli_peaks

from .conftest import RangeFileServer

MB = 1000 * 1000
MiB = 1024 * 1024
#: The worker of the seeds: 512 MB, the download and the parse together.
WORKER = 512 * MB
PAGES = 1200
#: ~300 MB: big enough that a read into memory could not pass, quick enough for CI.
PADDING = 250_000


@pytest.fixture(scope="module")
def big_pdf(file_root: Path) -> Iterator[Path]:
    path = file_root / "scan.pdf"
    write_pdf(path, PAGES, padding=PADDING)
    yield path
    path.unlink()


def _env(tmp_path: Path) -> dict[str, str]:
    # The download's temp directory on disk (tmp_path), not on tmpfs: tmpfs
    # pages are memory that no limit lets the kernel reclaim.
    return {**os.environ, "TMPDIR": str(tmp_path)}


@pytest.mark.slow
@pytest.mark.parametrize("action", ["split", "text"])
def test_a_300_MB_pdf_in_far_less_than_a_512_MB_worker(
    action: str, file_server: RangeFileServer, big_pdf: Path, tmp_path: Path
) -> None:
    assert big_pdf.stat().st_size > 290 * MB
    url = f"{file_server.url}/{big_pdf.name}"
    out = tmp_path / "out"
    args = ["pdf", action, url, "-q", "--memory-limit", "64MiB"]
    args += [str(out)] if action == "split" else ["-o", str(out)]
    done, _, peaks = run_cli_peaks(args, env=_env(tmp_path), capture=True)

    assert done.returncode == 0, done.stderr
    assert len(peaks) == 2, "the CLI and one parser process each report their peak"
    assert sum(peaks) < WORKER // 2, [f"{peak / MiB:.0f} MiB" for peak in peaks]
    if action == "split":
        assert len(os.listdir(out)) == PAGES // 50
    else:
        pages = out.read_text().split("\f")
        assert len(pages) == PAGES + 1 and pages[PAGES - 1] == page_text(PAGES)
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the download is gone


CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def _cgroup_or_skip(name: str) -> Path:
    if not (CGROUP_V1 / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller here")
    group = CGROUP_V1 / name
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here ({exc.strerror})")
    return group


@pytest.mark.slow
def test_download_and_split_inside_a_512_MiB_memory_cgroup(
    file_server: RangeFileServer, big_pdf: Path, tmp_path: Path
) -> None:
    group = _cgroup_or_skip(f"s3pull-test-{os.getpid()}")
    try:
        (group / "memory.limit_in_bytes").write_text(str(512 * MiB))
        procs = str(group / "cgroup.procs")

        def enter_group() -> None:
            with open(procs, "w") as file:
                file.write(str(os.getpid()))

        argv = [sys.executable, "-m", "s3pull", "pdf", "split", f"{file_server.url}/scan.pdf"]
        done = subprocess.run(
            [*argv, str(tmp_path / "out"), "-q"],
            env=_env(tmp_path),
            preexec_fn=enter_group,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        oom = (group / "memory.oom_control").read_text()
        assert done.returncode == 0, done.stderr
        assert "oom_kill 0" in oom or "oom_kill" not in oom, oom
        assert len(os.listdir(tmp_path / "out")) == PAGES // 50
    finally:
        group.rmdir()
