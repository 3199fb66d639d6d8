"""Peak RSS of a real ``s3pull`` command's process tree, measured inside
each process itself.

``wait4``'s ``ru_maxrss`` is not the child's own peak on Linux: a child
inherits the high-water mark of the process that forked it, so a test runner
or a demo holding 100 MB would be blamed on s3pull. Instead every
interpreter of the command's tree (the CLI and, under ``--processes``, its
worker processes) imports a tiny ``sitecustomize`` through ``PYTHONPATH``
that writes its ``VmHWM`` (the peak RSS of its own address space since
``exec``) when it exits. The tree's peak is reported as the sum of those
peaks: an upper bound, since they need not fall at the same moment.
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

#: Where each interpreter of the tree writes its peak (a file named by its pid).
PEAKS_ENV = "S3PULL_MEASURED_PEAKS"

_SITECUSTOMIZE = f"""
import atexit, os
_where = os.environ.get({PEAKS_ENV!r})
if _where:
    def _write_peak():
        with open("/proc/self/status") as status:
            kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(os.path.join(_where, str(os.getpid())), "w") as out:
            out.write(kib)
    # The CLI ends with os._exit (no interpreter teardown), which skips atexit.
    _exit = os._exit
    def _report_then_exit(code):
        _write_peak()
        _exit(code)
    os._exit = _report_then_exit
    atexit.register(_write_peak)  # for a command that raised instead
"""

_WRAPPER = """
import sys
sys.argv[0] = "s3pull"
from s3pull._cli import run
run()
"""


def run_cli_peaks(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    stdout: int | IO[bytes] | None = None,
) -> tuple[subprocess.CompletedProcess[str], float, list[int]]:
    """Run ``s3pull ARGS`` in a child process; see :func:`run_cli_measured`.

    Returns:
        (the completed process, wall seconds, the peak RSS in bytes of each
        process of its tree, the CLI's and every worker's).
    """
    with tempfile.TemporaryDirectory(prefix="s3pull-rss-") as scratch:
        hooks, peaks = Path(scratch) / "hooks", Path(scratch) / "peaks"
        hooks.mkdir()
        peaks.mkdir()
        (hooks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        child_env = dict(env) if env is not None else dict(os.environ)
        path = child_env.get("PYTHONPATH")
        child_env["PYTHONPATH"] = str(hooks) + (os.pathsep + path if path else "")
        child_env[PEAKS_ENV] = str(peaks)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, *args],
            env=child_env,
            stdout=stdout if stdout is not None else (subprocess.PIPE if capture else None),
            stderr=subprocess.PIPE if capture else None,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        found = [int(report.read_text()) * 1024 for report in peaks.iterdir()]
    return done, seconds, found


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
        (the completed process, wall seconds, the peak RSS in bytes of its
        process tree: the sum of each process's own peak).

    Example:
        >>> done, seconds, peak = run_cli_measured(["stat", "s3://b/k"])  # doctest: +SKIP
    """
    done, seconds, peaks = run_cli_peaks(args, env=env, capture=capture, stdout=stdout)
    return done, seconds, sum(peaks)
