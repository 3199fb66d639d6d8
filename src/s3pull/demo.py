"""``python -m s3pull.demo``: s3pull against an embedded local S3 server.

Starts :class:`s3pull.testing.FaultServer` on a free loopback port (no AWS
account, no network), stores a few generated objects in it — one of several
hundred MB — and downloads each with the real ``s3pull cp`` command in a
child process, so the progress bars are the CLI's own and the peak RSS
measured (each process's own VmHWM, summed over the tree: the CLI and its
worker processes) is that of a real download. Then
the big object again: under a 16 MiB budget, through injected faults
(connection resets, a truncated body, 503 SlowDown), and after a ``kill -9``
halfway through, where the second run fetches only what is missing. Every
file is checked against the SHA-256 of what was stored. Last, ``cp
--recursive`` of a prefix of 1000 small objects in which one object fails and
one key tries to escape the destination: the others all arrive, the failures
are reported, and the exit code says so.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ._units import format_size, parse_size
from .testing import Fault, FaultServer, generate_bytes, kill_when_journaled, run_cli_measured

MiB = 1024 * 1024


@dataclass(frozen=True)
class DemoObject:
    key: str
    size: int
    checksum: str | None = None


@dataclass(frozen=True)
class Outcome:
    label: str
    size: int
    seconds: float
    peak_rss: int
    identical: bool
    exit_code: int


def _write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(8 * MiB, remaining))
            digest.update(block)
            handle.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _cp_args(endpoint: str, source: str, destination: Path, *extra: str) -> list[str]:
    return ["cp", source, str(destination), "--endpoint-url", endpoint, *extra]


def _run_cp(endpoint: str, source: str, destination: Path, *extra: str) -> tuple[int, float, int]:
    """Run ``s3pull cp`` in a child; return (exit code, seconds, its own peak RSS)."""
    args = _cp_args(endpoint, source, destination, *extra)
    done, seconds, peak = run_cli_measured(args, env={**os.environ, **_ENV})
    return done.returncode, seconds, peak


def _add_faults(s3: FaultServer, key: str) -> None:
    """A bad day at the store: resets, a truncated body, throttling."""
    s3.add_fault(
        "demo", key, Fault.reset(at_fraction=0.6, times=2), method="GET", min_range_start=1
    )
    s3.add_fault("demo", key, Fault.truncate(at_fraction=0.5, times=1, skip=3), method="GET")
    s3.add_fault("demo", key, Fault.status(503, times=2, skip=5), method="GET")


def _crash_halfway(s3: FaultServer, key: str, size: int, destination: Path) -> int:
    """Start ``s3pull cp``, ``kill -9`` it once half the object is journaled;
    return the bytes the journal kept. The second half hangs at the server
    meanwhile, so the kill always lands mid-download."""
    s3.add_fault("demo", key, Fault.hang(), method="GET", min_range_start=size // 2)
    command = [
        sys.executable,
        "-m",
        "s3pull",
        *_cp_args(s3.endpoint_url, f"s3://demo/{key}", destination, "-q"),
    ]
    try:
        kept = kill_when_journaled(command, destination.parent, parts=2, env={**os.environ, **_ENV})
    finally:
        s3.clear_faults()
    part_size = 16 * MiB if size >= 256 * MiB else 8 * MiB
    return len(kept) * part_size


#: The many-objects row: objects under ``pages/``, each this big.
PAGES = 1000
PAGE_SIZE = 16 * 1024


def _many(s3: FaultServer, destination: Path) -> Outcome:
    """``cp --recursive`` of ``pages/`` with one failing object and one key that
    tries to escape: it must exit 1 with every other page identical and
    nothing written outside ``destination``."""
    keys = [f"pages/{i // 100:02d}/page-{i:04d}.html" for i in range(PAGES)]
    s3.put_many("demo", keys, size=PAGE_SIZE)
    s3.put_object("demo", "pages/../../escaped.txt", b"outside")
    broken = keys[500]
    s3.add_fault("demo", broken, Fault.status(500))
    code, seconds, rss = _run_cp(s3.endpoint_url, "s3://demo/pages/", destination, "--recursive")
    s3.clear_faults()
    identical = (
        code == 1
        and not (destination.parent.parent / "escaped.txt").exists()
        and not (destination / broken.removeprefix("pages/")).exists()
        and all(
            (destination / key.removeprefix("pages/")).read_bytes()
            == generate_bytes(key, PAGE_SIZE)
            for key in keys
            if key != broken
        )
    )
    label = f"pages/ -r ({PAGES}: 1 fails, 1 unsafe)"
    return Outcome(label, (PAGES - 1) * PAGE_SIZE, seconds, rss, identical, code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s3pull.demo", description=__doc__)
    parser.add_argument("--big", type=parse_size, default=512 * MiB, help="size of the big object")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    objects = [
        DemoObject("datasets/big-model.bin", args.big),
        DemoObject("reports/q3-report.pdf", 24 * MiB + 123, "CRC32C"),
        DemoObject("inventory/part-0001.csv.gz", 3 * MiB + 7, "SHA256"),
        DemoObject("small/hello.txt", 1234, "CRC64NVME"),
    ]
    with tempfile.TemporaryDirectory(prefix="s3pull-demo-") as scratch, FaultServer() as s3:
        work = Path(scratch)
        (work / "store").mkdir()
        console.rule("[bold]s3pull demo")
        console.print(f"embedded S3 server: {s3.endpoint_url} (bucket [bold]demo[/])")
        expected: dict[str, str] = {}
        for item in objects:
            backing = work / "store" / item.key.replace("/", "_")
            expected[item.key] = _write_random(backing, item.size)
            if item.checksum is None:
                s3.put_object("demo", item.key, backing)
            else:
                s3.put_object(
                    "demo", item.key, backing.read_bytes(), checksum_algorithm=item.checksum
                )
            console.print(f"  stored s3://demo/{item.key} ({format_size(item.size)})")

        outcomes: list[Outcome] = []
        big = objects[0]
        runs: list[tuple[DemoObject, str, tuple[str, ...]]] = [(o, o.key, ()) for o in objects]
        runs.append((big, "  again, --memory-limit 16MiB", ("--memory-limit", "16MiB")))
        runs.append((big, "  again, through resets, truncation, 503s", ()))
        runs.append((big, "  again, after kill -9", ()))
        for item, label, extra in runs:
            console.rule(f"s3pull cp s3://demo/{item.key}{label if label != item.key else ''}")
            destination = work / "out" / str(len(outcomes)) / item.key.rsplit("/", 1)[-1]
            destination.parent.mkdir(parents=True)
            if label.endswith("503s"):
                _add_faults(s3, item.key)
            if label.endswith("kill -9"):
                kept = _crash_halfway(s3, item.key, item.size, destination)
                label += f" (kept {format_size(kept)})"
                console.print(f"killed mid-download; the journal kept {format_size(kept)}")
            code, seconds, rss = _run_cp(
                s3.endpoint_url, f"s3://demo/{item.key}", destination, *extra
            )
            s3.clear_faults()
            identical = code == 0 and _sha256(destination) == expected[item.key]
            outcomes.append(Outcome(label, item.size, seconds, rss, identical, code))
            if destination.exists():
                destination.unlink()

        console.rule("s3pull cp --recursive s3://demo/pages/ (1 object failing, 1 hostile key)")
        outcomes.append(_many(s3, work / "out" / "pages"))

        table = Table(title="s3pull demo: every download verified against the stored SHA-256")
        for column in ("object", "size", "wall s", "throughput", "peak RSS", "identical"):
            if column == "object":
                table.add_column(column, justify="left", no_wrap=True)
            else:
                table.add_column(column, justify="right")
        for outcome in outcomes:
            table.add_row(
                outcome.label,
                format_size(outcome.size),
                f"{outcome.seconds:.2f}",
                f"{format_size(outcome.size / outcome.seconds)}/s",
                format_size(outcome.peak_rss),
                "[green]yes" if outcome.identical else f"[red]NO (exit {outcome.exit_code})",
            )
        console.print(table)
        console.print(
            "wall time includes starting the interpreter; peak RSS is the whole "
            "s3pull process tree (each process's own VmHWM, summed: a batch of 1000 or "
            "more small objects runs in this process and one worker per other core); "
            "one process's imports take ~33 MB."
        )
        return 0 if all(outcome.identical for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
