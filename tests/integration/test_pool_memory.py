"""The process tree of ``cp -r --processes N`` stays within N idle workers +
the one budget + slack: the workers share the budget, they do not multiply it.
Under ``--processes auto`` the parent is one of the shares: it lends the
workers theirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3pull.testing import FaultServer, run_cli_peaks

from ..support import pattern

MiB = 1024 * 1024
BUDGET = 16 * MiB
# Allocator and interpreter noise we accept per process on top of its budget.
SLACK = 8 * MiB


def tree_peaks(
    s3: FaultServer, prefix: str, tmp_path: Path, name: str, processes: str = "2"
) -> list[int]:
    """Run ``cp -r`` over ``processes``; the peak RSS of each process of the tree."""
    env = dict(os.environ, AWS_ENDPOINT_URL=s3.endpoint_url)
    args = ["cp", "-r", f"s3://bucket/{prefix}", str(tmp_path / name), "-q"]
    args += ["--processes", processes, "--memory-limit", f"{BUDGET}"]
    done, _, found = run_cli_peaks(args, env=env, capture=True)
    assert done.returncode == 0, done.stderr
    # Two workers and their parent; or the parent and one worker per other core.
    expected = 3 if processes == "2" else len(os.sched_getaffinity(0))
    assert len(found) == expected, "every process of the tree reports its peak"
    return found


def within_the_budget(idle: list[int], loaded: list[int]) -> None:
    limit = sum(idle) + BUDGET + len(idle) * SLACK
    assert sum(loaded) <= limit, (
        f"tree peak {sum(loaded) / MiB:.1f} MiB (each: {[p // MiB for p in loaded]}) vs "
        f"idle {sum(idle) / MiB:.1f} MiB + budget {BUDGET // MiB} MiB + slack"
    )


def test_the_trees_peak_rss_is_n_idle_workers_plus_the_budget(tmp_path: Path) -> None:
    with FaultServer() as s3:
        # "Idle": a few objects each way an object is fetched (one GET into a
        # file on the loop, or on a worker thread), so the modules a download
        # loads are counted in the baseline, as for one process.
        for i in range(8):
            s3.put_object("bucket", f"idle/{i}", pattern(1000 if i % 2 else 2 * MiB, seed=i))
        for i in range(300):
            s3.put_object("bucket", f"many/small/{i:03d}", pattern(256 * 1024, seed=i))
        for i in range(4):
            s3.put_object("bucket", f"many/big/{i}", pattern(24 * MiB, seed=1000 + i))
        idle = tree_peaks(s3, "idle/", tmp_path, "idle")
        loaded = tree_peaks(s3, "many/", tmp_path, "many")
    assert len(list((tmp_path / "many").rglob("*"))) == 300 + 4 + 2
    within_the_budget(idle, loaded)


def test_under_auto_the_parent_and_its_workers_share_one_budget(tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: auto runs the batch in one process")
    with FaultServer() as s3:
        # One full listing page each, small on average: the parent and one
        # worker per other core. The idle batch's objects are tiny, but for
        # one of each way an object is fetched (see above).
        s3.put_many("bucket", (f"idle/{i:04d}" for i in range(998)), size=100)
        for i in range(2):
            s3.put_object("bucket", f"idle/x{i}", pattern(1000 if i else 2 * MiB, seed=i))
        s3.put_many("bucket", (f"many/small/{i:04d}" for i in range(1100)), size=64 * 1024)
        for i in range(4):
            s3.put_object("bucket", f"many/big/{i}", pattern(24 * MiB, seed=1000 + i))
        idle = tree_peaks(s3, "idle/", tmp_path, "idle", "auto")
        loaded = tree_peaks(s3, "many/", tmp_path, "many", "auto")
    assert len(list((tmp_path / "many").rglob("*"))) == 1100 + 4 + 2
    within_the_budget(idle, loaded)
