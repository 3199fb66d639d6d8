"""The process tree of ``cp -r --processes N`` stays within N idle workers +
the one budget + slack: the workers share the budget, they do not multiply it."""

from __future__ import annotations

import os
from pathlib import Path

from s3pull.testing import FaultServer, run_cli_peaks

from ..support import pattern

MiB = 1024 * 1024
BUDGET = 16 * MiB
# Allocator and interpreter noise we accept per process on top of its budget.
SLACK = 8 * MiB


def tree_peaks(s3: FaultServer, prefix: str, tmp_path: Path, name: str) -> list[int]:
    """Run ``cp -r`` over two workers; the peak RSS of each process of the tree."""
    env = dict(os.environ, AWS_ENDPOINT_URL=s3.endpoint_url)
    args = ["cp", "-r", f"s3://bucket/{prefix}", str(tmp_path / name), "-q"]
    args += ["--processes", "2", "--memory-limit", f"{BUDGET}"]
    done, _, found = run_cli_peaks(args, env=env, capture=True)
    assert done.returncode == 0, done.stderr
    assert len(found) == 3, "the parent and both workers report their peaks"
    return found


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
    limit = sum(idle) + BUDGET + len(idle) * SLACK
    assert sum(loaded) <= limit, (
        f"tree peak {sum(loaded) / MiB:.1f} MiB (each: {[p // MiB for p in loaded]}) vs "
        f"idle {sum(idle) / MiB:.1f} MiB + budget {BUDGET // MiB} MiB + slack"
    )
