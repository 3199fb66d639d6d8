"""Runs one client as a subprocess and measures it.

Memory. Two views of the peak, and the larger one is reported:

* the sampled tree sum: every ``SAMPLE_INTERVAL`` the resident set sizes
  (``/proc/PID/statm``) of the child and all its descendants are added up.
  This sees helpers that run in parallel (a wrapper plus the real binary,
  worker processes) but can miss a spike shorter than the interval;
* ``ru_maxrss`` from ``os.wait4``: the kernel's exact high-water mark of the
  client (or of one descendant it waited for, whichever is larger), which no
  spike escapes but which never adds up concurrent processes.

The client is started by ``launch.py``, a small interpreter that does the
``wait4`` and reports the client's rusage: ``ru_maxrss`` inherits the RSS of
the process that forked the client, and the launcher's is only a few MB
(the benchmark's own would be added to every client otherwise). The launcher
itself is left out of the sampled sum.

CPU. ``ru_utime + ru_stime`` of the client as ``wait4`` reports it, which
includes the descendants it waited for.

Helpers that are not descendants (a Celery worker started before the run,
``also``): their process groups join the sampled sum, and the CPU their
members used during the run (``/proc/PID/stat``, children reaped meanwhile
included) is added to the client's.

Time. Wall time from spawning the client to reaping it, taken by the
launcher: interpreter start-up and imports are part of it, as they are for
anyone who runs the command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_INTERVAL = 0.020
_LAUNCHER = Path(__file__).resolve().parent / "launch.py"
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Measurement:
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes: max(sampled tree sum, ru_maxrss)
    tree_rss: int  # bytes: sampled peak of the tree sum
    maxrss: int  # bytes: ru_maxrss
    timed_out: bool
    stderr_tail: str


def _stat(pid: str) -> tuple[int, int] | None:
    """(ppid, pgrp) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[2])


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError):
        return 0


class TreeSampler:
    """Sums the RSS of every descendant of ``root`` (or member of its process
    group), ``root`` itself (the launcher) excluded, and of every member of
    the process groups led by ``also``.

    The kernel here lacks ``/proc/PID/task/TID/children``, so descendants are
    found by reading ``/proc/PID/stat`` (parent, group) of processes. Each pid
    is classified once: a process that was not in the tree when first seen
    never joins it (it cannot enter another session's group), so a sample
    reads only the new pids and the members' ``statm``, about 0.1 ms instead
    of a full scan's 1.5 ms on a quiet machine.
    """

    def __init__(self, root: int, also: tuple[int, ...] = ()) -> None:
        self.root = root
        self.groups = {root, *also}
        self.members = {root, *also}
        self.outsiders: set[int] = set()

    def sample(self) -> int:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self.members or pid in self.outsiders:
                continue
            info = _stat(name)
            if info is None:
                continue
            ppid, pgrp = info
            if pgrp in self.groups or ppid in self.members:
                self.members.add(pid)
            else:
                self.outsiders.add(pid)
        return sum(_rss(pid) for pid in self.members if pid != self.root)


_TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(groups: tuple[int, ...]) -> float:
    """CPU seconds used so far by the members of these process groups (and by
    the children they reaped)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[2]) in groups:
            # utime, stime, cutime, cstime (fields 14-17 of proc(5))
            total += sum(int(x) for x in fields[11:15])
    return total / _TICK


def run(
    argv: list[str],
    env: dict[str, str],
    timeout: float,
    log_path: Path,
    also: tuple[int, ...] = (),
) -> Measurement:
    """Run ``argv`` to completion (killing its process group after ``timeout``);
    the process groups led by ``also`` are measured with it."""
    result_path = log_path.with_suffix(".rusage.json")
    result_path.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-I", str(_LAUNCHER), str(result_path)]
    helpers_cpu = group_cpu(also) if also else 0.0
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*launcher, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: measurable and killable as one
        )
        started = time.perf_counter()
        peak = 0
        tree = TreeSampler(proc.pid, also)
        done = threading.Event()
        timed_out = threading.Event()

        def sample() -> None:
            nonlocal peak
            deadline = started + timeout
            while not done.wait(SAMPLE_INTERVAL):
                peak = max(peak, tree.sample())
                if time.perf_counter() > deadline and not timed_out.is_set():
                    timed_out.set()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            proc.wait()
        finally:
            done.set()
            # Ctrl-C, a timeout, or a client that left helpers behind in its
            # group: nothing it started outlives the measurement.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        sampler.join()
    if also:
        helpers_cpu = group_cpu(also) - helpers_cpu
    tail = log_path.read_bytes()[-2000:].decode(errors="replace")
    try:
        usage = json.loads(result_path.read_text())
    except (OSError, ValueError):  # killed before the launcher could report
        usage = {"exitcode": -9, "wall_s": time.perf_counter() - started, "cpu_s": 0.0, "maxrss": 0}
    return Measurement(
        returncode=usage["exitcode"],
        wall_s=usage["wall_s"],
        cpu_s=usage["cpu_s"] + helpers_cpu,
        peak_rss=max(peak, usage["maxrss"]),
        tree_rss=peak,
        maxrss=usage["maxrss"],
        timed_out=timed_out.is_set(),
        stderr_tail=tail,
    )


@dataclass(frozen=True)
class Run:
    """One run of one client in :func:`interleaved` (round 0: the warm-up)."""

    client: str
    round_no: int
    measurement: Measurement
    problem: str | None  # None: it ran and its output checked out


def interleaved(
    clients: Iterable[str],
    runs: int,
    one_run: Callable[[str, str], tuple[Measurement, str | None]],
) -> Iterator[Run]:
    """An untimed warm-up of every client, then ``runs`` counted rounds with
    every client in turn, so that the clients of a round share the machine's
    state of the moment. ``one_run(client, tag)`` runs and checks one
    (``tag``: ``warmup``, ``run1``...); a client whose run has a problem is
    out of the later rounds."""
    left = list(clients)
    for round_no in range(runs + 1):
        for client in list(left):
            m, problem = one_run(client, f"run{round_no}" if round_no else "warmup")
            if problem is not None:
                left.remove(client)
            yield Run(client, round_no, m, problem)
