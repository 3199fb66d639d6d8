"""Entry point: ``python -m bench.run`` (what ``make bench`` runs).

Installs what is missing (nginx + Lua, one venv per peer), generates the data
set once, starts the local S3 endpoint, runs the scenarios and writes
BENCHMARKS.md, bench/results/latest.json and the charts. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import data, provision, report, runner, server
from bench.scenarios import BASELINE, CLIENTS, SCENARIOS, s3pull_binary, use_baseline

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
RESULTS = BENCH_DIR / "results"
# One per run: a run removes its output root when it ends, and two runs on one
# machine (another checkout's A/B, say) must not remove each other's files.
SHM_ROOT = Path("/dev/shm") / f"s3pull-bench-{os.getpid()}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="s3pull side by side with boto3, the AWS CRT, obstore, aiobotocore and s5cmd.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 counted run of the scenarios marked quick ("
        + ", ".join(s.name for s in SCENARIOS if s.quick)
        + ")",
    )
    parser.add_argument(
        "--scenario",
        help="comma-separated scenario names (default: all): "
        + ", ".join(s.name for s in SCENARIOS),
    )
    parser.add_argument(
        "--clients", help="comma-separated clients (default: all): " + ", ".join(CLIENTS)
    )
    parser.add_argument(
        "--runs", type=int, help="counted runs per client (default: 3; 1 if --quick)"
    )
    parser.add_argument(
        "--size-scale",
        type=float,
        default=1.0,
        help="scale the data set (1 GiB object, 100 x 16 MiB, 300 x 4 MiB and 2000 x 64 KiB "
        "objects) by this "
        "factor, e.g. 0.0625 for a 64 MiB object while developing (default: 1)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="Markdown output (default: BENCHMARKS.md for a complete run, "
        "bench/results/reduced.md for a --quick, filtered or scaled one)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="PATH",
        help=f"another checkout's s3pull entry point (e.g. ../base/.venv/bin/s3pull): adds "
        f"the client {BASELINE}, run exactly as s3pull and interleaved with it in every "
        "scenario s3pull runs in, and an 's3pull / base' column (A/B of two commits)",
    )
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1 or args.size_scale <= 0:
        parser.error("--runs and --size-scale must be positive")
    if args.baseline is not None:
        if not os.access(args.baseline, os.X_OK) or args.baseline.is_dir():
            parser.error(f"--baseline {args.baseline}: not an executable s3pull entry point")
        args.baseline = args.baseline.absolute()
    elif args.clients and BASELINE in args.clients.split(","):
        parser.error(f"the client {BASELINE} needs --baseline PATH")
    return args


def _select(args: argparse.Namespace):
    scenarios = [s for s in SCENARIOS if s.quick] if args.quick else list(SCENARIOS)
    if args.scenario:
        wanted = args.scenario.split(",")
        unknown = set(wanted) - {s.name for s in SCENARIOS}
        if unknown:
            sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        scenarios = [s for s in SCENARIOS if s.name in wanted]
    clients = set(args.clients.split(",")) if args.clients else set(CLIENTS)
    unknown = clients - set(CLIENTS)
    if unknown:
        sys.exit(f"unknown client(s): {', '.join(sorted(unknown))}")
    if args.baseline is not None:  # s3pull-base right after s3pull: interleaved A B, A B
        scenarios = [dataclasses.replace(s, clients=_with_baseline(s.clients)) for s in scenarios]
    plan = [(s, [c for c in s.clients if c in clients]) for s in scenarios]
    return [(s, cs) for s, cs in plan if cs]


def _with_baseline(clients: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for name in clients for c in ((name, BASELINE) if name == "s3pull" else (name,)))


def _client_env() -> dict[str, str]:
    """The same credentials for every client, and nothing from the user's AWS setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=str(WORK / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(WORK / "no-aws-credentials"),
        # Never ask the EC2 metadata service for anything: loopback only.
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("PYTHONPATH", None)
    return env


def _charts(json_path: Path) -> None:
    tools = provision.venv_python("tools")
    run = subprocess.run(
        [str(tools), str(BENCH_DIR / "charts.py"), str(json_path), str(RESULTS)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        print(f"charts failed:\n{run.stderr[-2000:]}", file=sys.stderr)


def _summary(results: list[runner.ScenarioResult]) -> None:
    for s in results:
        print(f"\n{s.name} ({s.unit})")
        for c in s.clients:
            if c.status != "ok":
                print(f"  {c.name:<15} {c.status} {c.note}")
                continue
            ratio = "" if c.ratio_to_best_peer is None else f"{c.ratio_to_best_peer:5.2f}x"
            if c.ratio_to_baseline is not None:
                ratio += f"  {c.ratio_to_baseline:5.2f}x base"
            print(
                f"  {c.name:<15} {c.median:9.1f} [{c.min:.1f}-{c.max:.1f}]  "
                f"RSS {c.peak_rss / 1e6:6.1f} MB  CPU {c.cpu_s_per_gb:5.2f} s/GB  {ratio}"
            )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    plan = _select(args)
    if not plan:
        sys.exit("nothing to run: no scenario has one of the selected clients")
    provision.ensure_nginx()
    venvs = {CLIENTS[c].venv for _, cs in plan for c in cs} - {None}
    if not args.no_charts:
        venvs.add("tools")
    for venv in sorted(venvs):
        provision.ensure_venv(venv)
    provision.compile_s3pull()
    s3pull = s3pull_binary()
    if s3pull is None:
        print("note: no s3pull entry point next to this interpreter; s3pull rows will be n/a")
    if args.baseline is not None:
        provision.compile_s3pull(binary=args.baseline)
        use_baseline(args.baseline)

    layout = data.Layout.scaled(args.size_scale)
    WORK.mkdir(parents=True, exist_ok=True)
    dataset = data.ensure(WORK, layout)
    names = data.describe(layout)
    logs = WORK / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    out_roots = {"shm": SHM_ROOT, "disk": WORK / "out"}

    results: list[runner.ScenarioResult] = []
    try:
        with server.running(WORK, dataset) as endpoints:
            ctx = runner.Context(endpoints, dataset, out_roots, logs, _client_env(), args.runs)
            for scenario, clients in plan:
                titled = dataclasses.replace(scenario, title=scenario.title.format(**names))
                results.append(runner.run_scenario(titled, clients, ctx))
    finally:
        for root in out_roots.values():
            shutil.rmtree(root, ignore_errors=True)

    # Only a complete run replaces BENCHMARKS.md.
    full = (
        args.size_scale == 1
        and args.runs >= 3
        and not (args.quick or args.scenario or args.clients or args.baseline)
    )
    meta = {
        "date": report.now(),
        "argv": shlex.join(sys.argv[1:] if argv is None else argv),
        "duration_s": time.monotonic() - started,
        "machine": report.machine(),
        "versions": report.versions(s3pull, {v for v in venvs if v != "tools"}, args.baseline),
        "runs": args.runs,
        "size_scale": args.size_scale,
        "layout": layout.__dict__,
        "baseline": None if args.baseline is None else str(args.baseline),
        "wan": {"first_byte_ms": round(server.WAN_DELAY * 1000), "rate": server.WAN_RATE_LABEL},
    }
    scenarios_json = [r.to_json() for r in results]
    json_path = RESULTS / "latest.json"
    report.write_json(json_path, meta, scenarios_json)
    charts: list[Path] = []
    if not args.no_charts:
        _charts(json_path)
        charts = sorted(RESULTS.glob("*.png"))  # charts.py removed the stale ones first
    md_path = args.report or (REPO / "BENCHMARKS.md" if full else RESULTS / "reduced.md")
    report.write_markdown(md_path, meta, scenarios_json, charts)
    _summary(results)
    if full:  # the documents scenarios add their own section (bench/documents.py)
        from bench import documents

        documents.main(["--runs", str(args.runs), "--append", str(md_path)])
    print(f"\nwrote {md_path}, {json_path}; total {meta['duration_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Clients, nginx and outputs were already cleaned up on the way out.
        sys.exit("interrupted")
