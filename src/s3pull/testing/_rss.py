"""Peak RSS of a real ``s3pull`` command, measured inside the child itself.

``wait4``'s ``ru_maxrss`` is not the child's own peak on Linux: a child
inherits the high-water mark of the process that forked it, so a test runner
or a demo holding 100 MB would be blamed on s3pull. Instead the child runs
the CLI through a tiny wrapper that writes its ``VmHWM`` (the peak RSS of its
own address space since ``exec``) when it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_WRAPPER = """
import atexit, os, sys
report = sys.argv.pop(1)
def _write_peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(report, "w") as out:
        out.write(kib)
# The command ends with os._exit (no interpreter teardown), which skips atexit.
_exit = os._exit
def _report_then_exit(code):
    _write_peak()
    _exit(code)
os._exit = _report_then_exit
atexit.register(_write_peak)  # for a command that raised instead
sys.argv[0] = "s3pull"
from s3pull._cli import run
run()
"""


def run_cli_measured(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    stdout: int | IO[bytes] | None = None,
) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run ``s3pull ARGS`` in a child process.

    ``capture`` collects stdout and stderr as text; ``stdout`` sends stdout
    elsewhere instead (a pipe to another process, a file), with stderr
    still captured when ``capture`` is set.

    Returns:
        (the completed process, wall seconds, the child's own peak RSS in bytes).

    Example:
        >>> done, seconds, peak = run_cli_measured(["stat", "s3://b/k"])  # doctest: +SKIP
    """
    with tempfile.TemporaryDirectory(prefix="s3pull-rss-") as scratch:
        report = Path(scratch) / "peak"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(report), *args],
            env=dict(env) if env is not None else dict(os.environ),
            stdout=stdout if stdout is not None else (subprocess.PIPE if capture else None),
            stderr=subprocess.PIPE if capture else None,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        peak = int(report.read_text()) * 1024 if report.exists() else 0
    return done, seconds, peak
