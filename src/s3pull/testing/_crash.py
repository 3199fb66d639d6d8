"""Crash a download on purpose: ``kill -9`` once its journal shows progress.

Used to test (and to demonstrate) crash resume: the killed process leaves
its temp file and journal behind, and running the same download again must
fetch only the parts the journal does not hold.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..sinks import Directory, read_journal


def journaled_parts(directory: Path) -> dict[int, int | None]:
    """The parts recorded by the journal in ``directory`` with the most of them."""
    best: dict[int, int | None] = {}
    try:
        opened = Directory.open(directory, create=False)
    except FileNotFoundError:
        return best  # not made yet
    with opened:
        for path in directory.glob(".*.s3pull-*.journal"):
            recorded = read_journal(path.name, opened)
            if recorded is not None and len(recorded[1]) > len(best):
                best = recorded[1]
    return best


def kill_when_journaled(
    command: Sequence[str],
    directory: Path,
    *,
    parts: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> dict[int, int | None]:
    """Run ``command``; SIGKILL it once a journal in ``directory`` holds ``parts``
    parts; return the parts the journal holds after the kill.

    Raises:
        AssertionError: the journal did not get there within ``timeout``
            seconds, or the command ended by itself first.
    """
    child = subprocess.Popen(
        command, env=dict(env) if env is not None else None, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while len(journaled_parts(directory)) < parts:
            if child.poll() is not None:
                raise AssertionError(
                    f"the download ended (exit {child.returncode}) before the kill"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no journal with {parts} parts in {directory} in {timeout} s")
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    return journaled_parts(directory)
