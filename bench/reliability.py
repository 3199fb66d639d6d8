"""What s3pull, boto3 and s5cmd do when the store misbehaves: measured.

Usage: ``python -m bench.reliability [--size-mib 64] [--timeout 60] [--only NAME]``
(``make reliability``).

For each fault case and each client a fresh FaultServer is started as a
subprocess (``python -m s3pull.testing --root DIR --script faults.json --log
requests.jsonl``) so rule counters start from zero, and the client downloads
one object big enough (64 MiB) for every client to use ranged GETs. Each run
is bounded by a wall-clock limit; a client still running then is killed and
reported as hung. Afterwards the destination directory is inspected and the
file compared byte for byte (by SHA-256) with the object as stored before the
fault, and with the object as the server holds it at the end (a client that
downloads the replacement whole is right too). The request log gives the
body bytes the server sent, which shows whether a broken part was resumed or
fetched again.

Outcomes: ``identical``, ``typed error`` (non-zero exit, nothing at the
destination), ``corrupt file`` (wrong bytes at the destination; "exit 0"
when the client also claimed success), ``partial/temp file left`` (an error,
with something else left in the directory), ``hung``.

Credentials are fake, the endpoint is 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import provision
from bench.run import _client_env as fake_aws_env  # the benchmark's fake credentials
from bench.scenarios import s3pull_binary

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
WORK = BENCH_DIR / ".work" / "reliability"
BUCKET = "bench"
KEY = "object.bin"
MiB = 1024 * 1024

#: Only non-first parts are hit (``min_range_start=1``): every client's first
#: GET is bytes 0-..., so the fault lands mid-download whatever the part size.
LATER_PARTS: dict[str, Any] = {"bucket": BUCKET, "key": KEY, "method": "GET", "min_range_start": 1}


DRIP = [
    {
        **LATER_PARTS,
        "fault": {"kind": "drip", "chunk": 1, "interval": 2.0, "at_byte": MiB, "times": 1},
    }
]
#: Marks the harness's own GET of the object after a run, left out of the counts.
VERIFY_QUERY = "bench-verify"


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    rules: list[dict[str, Any]]
    #: the wall-clock limit of each run, when not the command line's
    limit: float | None = None


CASES = [
    Case(
        "reset",
        "RST at 50 % of a part, once",
        [{**LATER_PARTS, "fault": {"kind": "reset", "at_fraction": 0.5, "times": 1}}],
    ),
    Case(
        "truncate",
        "FIN before Content-Length at 50 % of a part, once",
        [{**LATER_PARTS, "fault": {"kind": "truncate", "at_fraction": 0.5, "times": 1}}],
    ),
    Case(
        "slowdown",
        "503 SlowDown on the first 3 GETs",
        [
            {
                "bucket": BUCKET,
                "key": KEY,
                "method": "GET",
                "fault": {"kind": "status", "status": 503, "times": 3},
            }
        ],
    ),
    Case("drip", "a part drips 1 byte / 2 s after its first MiB, once", DRIP),
    # s3pull's stall floor is checked over tumbling 30 s windows; the first one
    # still holds the fast first MiB, so the drip is judged after 30-60 s.
    Case("drip-long", "the same drip, runs killed after 120 s", DRIP, limit=120.0),
    Case(
        "replace",
        "object replaced (new ETag) at the first later-part GET",
        [{**LATER_PARTS, "fault": {"kind": "replace", "times": 1}}],
    ),
    Case(
        "flip",
        "one byte flipped in every later part (MD5 ETag unchanged)",
        [{**LATER_PARTS, "fault": {"kind": "flip_byte", "at_fraction": 0.5}}],
    ),
]


@dataclass
class Run:
    case: str
    client: str
    outcome: str
    detail: str
    exit_code: int | None
    wall_s: float
    bytes_sent: int
    requests: int
    left: list[str]


def client_argv(client: str, endpoint: str, dest: Path) -> list[str]:
    """Each client as users run it: defaults, one object to one file."""
    if client == "s3pull":
        binary = s3pull_binary()
        if binary is None:
            sys.exit("the s3pull entry point is missing: run from the repo's venv")
        return [str(binary), "cp", f"s3://{BUCKET}/{KEY}", str(dest), "--endpoint-url", endpoint]
    if client == "boto3":
        script = BENCH_DIR / "peers" / "boto3_get.py"
        argv = [str(provision.venv_python("boto3")), str(script), "--endpoint", endpoint]
        return [*argv, "--bucket", BUCKET, "--key", KEY, "--dest", str(dest)]
    # A custom endpoint makes s5cmd use path-style URLs.
    argv = [str(provision.s5cmd_binary()), "--endpoint-url", endpoint, "--log", "error", "cp"]
    return [*argv, f"s3://{BUCKET}/{KEY}", str(dest)]


def stop(process: subprocess.Popen[str]) -> None:
    """End a process group we started (the client, or the server)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_server(root: Path, script: Path, log: Path, env: dict[str, str]) -> tuple[Any, str]:
    argv = [sys.executable, "-m", "s3pull.testing", "--port", "0", "--root", str(root)]
    argv += ["--script", str(script), "--log", str(log)]
    server = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("endpoint_url="):
        stop(server)
        sys.exit(f"the fault server did not start: {line!r}")
    return server, line.removeprefix("endpoint_url=")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def current_object_sha(endpoint: str) -> str | None:
    """SHA-256 of the object as the server holds it now (after a ``replace``)."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(
            f"{endpoint}/{BUCKET}/{KEY}?{VERIFY_QUERY}=1", timeout=30
        ) as response:
            while chunk := response.read(4 * MiB):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def server_log(log: Path) -> tuple[int, int]:
    """Body bytes sent for the object and GETs made, from the request log."""
    sent = gets = 0
    if log.exists():
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if (
                record["key"] == KEY
                and record["method"] == "GET"
                and VERIFY_QUERY not in record["query"]
            ):
                sent += record["body_bytes_sent"]
                gets += 1
    return sent, gets


def classify(
    proc_exit: int | None, dest: Path, left: list[str], original: str, current: str | None
) -> tuple[str, str]:
    if proc_exit is None:
        return "hung", "killed after the time limit"
    if dest.exists():
        sha = sha256_file(dest)
        if sha in (original, current):
            version = "" if sha == original else " (the replacement version)"
            if proc_exit == 0:
                return "identical", f"identical{version}"
            return "identical file but exit != 0", version
        return "corrupt file", "exit 0" if proc_exit == 0 else f"exit {proc_exit}"
    if proc_exit == 0:
        return "no file", "exit 0 but nothing at the destination"
    if left:
        return "partial/temp file left", ", ".join(left)
    return "typed error", ""


def run_one(case: Case, client: str, root: Path, original: str, limit: float) -> Run:
    limit = case.limit or limit
    work = WORK / "runs" / f"{case.name}-{client}"
    shutil.rmtree(work, ignore_errors=True)
    out_dir = work / "out"
    out_dir.mkdir(parents=True)
    script, log = work / "faults.json", work / "requests.jsonl"
    script.write_text(json.dumps({"faults": case.rules}, indent=2))
    env = fake_aws_env()
    server, endpoint = start_server(root, script, log, env)
    dest = out_dir / KEY
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            client_argv(client, endpoint, dest),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=limit)
            exit_code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            stop(process)
            stdout, stderr = process.communicate()
            exit_code = None
        wall = time.perf_counter() - started
        current = current_object_sha(endpoint) if case.name == "replace" else None
    finally:
        stop(server)
    left = sorted(p.name for p in out_dir.iterdir() if p.name != KEY)
    outcome, detail = classify(exit_code, dest, left, original, current)
    if outcome in ("typed error", "partial/temp file left", "corrupt file") and exit_code:
        message = last_line(stderr) or last_line(stdout)
        detail = f"{detail}: {message}" if detail else message
    if outcome == "hung":
        detail = hung_detail(limit, left)
    sent, gets = server_log(log)
    return Run(case.name, client, outcome, detail, exit_code, wall, sent, gets, left)


def hung_detail(limit: float, left: list[str]) -> str:
    return f"killed after {limit:.0f} s" + (f"; left {', '.join(left)}" if left else "")


def markdown(runs: list[Run], size: int, limit: float, versions: dict[str, str]) -> str:
    titles = {case.name: case.title for case in CASES}
    lines = [
        "# Reliability under injected faults",
        "",
        f"One {size // MiB} MiB object from the FaultServer (`python -m s3pull.testing`) on",
        "127.0.0.1, a fresh server per run, each client with its defaults; runs killed",
        f"after {limit:.0f} s. Made by `make reliability` (`bench/reliability.py`).",
        "Clients: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        "",
        '"Bytes sent" is the body bytes the server sent for the object over all GETs',
        f"({size // MiB} MiB = {size:,}); more than the object size means re-fetched bytes.",
        "",
        "| fault | client | outcome | exit | bytes sent | GETs | wall s | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        exit_code = "killed" if run.exit_code is None else str(run.exit_code)
        detail = run.detail.replace("|", "\\|")
        lines.append(
            f"| {titles[run.case]} | {run.client} | **{run.outcome}** | {exit_code} | "
            f"{run.bytes_sent:,} | {run.requests} | {run.wall_s:.1f} | {detail} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64, help="object size (64)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run (60)")
    parser.add_argument("--only", action="append", help="run only this case (repeatable)")
    parser.add_argument("--clients", default="s3pull,boto3,s5cmd")
    args = parser.parse_args()

    provision.ensure_venv("boto3")
    provision.ensure_venv("s5cmd")
    size = args.size_mib * MiB
    root = WORK / "root"
    source = root / BUCKET / KEY
    if not source.exists() or source.stat().st_size != size:
        source.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "wb") as file:
            for _ in range(args.size_mib):
                file.write(os.urandom(MiB))
    original = sha256_file(source)
    versions = {
        "s3pull": subprocess.run(
            [str(s3pull_binary()), "--version"], capture_output=True, text=True
        ).stdout.split()[-1],
        "boto3": provision.package_version(provision.venv_python("boto3"), "boto3"),
        "s5cmd": provision.package_version(provision.venv_python("s5cmd"), "s5cmd"),
    }
    runs: list[Run] = []
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        for client in args.clients.split(","):
            run = run_one(case, client, root, original, args.timeout)
            print(
                f"{case.name:9} {client:7} {run.outcome:22} exit={run.exit_code} "
                f"sent={run.bytes_sent:,} gets={run.requests} {run.wall_s:.1f}s {run.detail}",
                flush=True,
            )
            runs.append(run)
    RESULTS.mkdir(exist_ok=True)
    report = {
        "size": size,
        "timeout_s": args.timeout,
        "versions": versions,
        "cases": [asdict(case) for case in CASES],
        "runs": [asdict(run) for run in runs],
    }
    (RESULTS / "reliability.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "reliability.md").write_text(markdown(runs, size, args.timeout, versions))
    print(f"wrote {RESULTS / 'reliability.md'} and {RESULTS / 'reliability.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
