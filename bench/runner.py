"""Runs one scenario: a warm-up per client, then interleaved counted rounds.

Interleaving (A B C, A B C, ...) rather than batching (A A A, B B B) spreads
slow drifts of the machine (page cache, writeback, other load, thermal state)
over every client instead of charging them to whichever ran last. Every
output is verified byte for byte against the MD5 of the manifest before its
run counts; a run that fails or writes a wrong byte makes the client FAIL for
the scenario, and it is not timed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import data, fleet, measure
from bench.scenarios import (
    BASELINE,
    CLIENTS,
    LARGE_KEY,
    MEDIUM_PREFIX,
    MID_PREFIX,
    SMALL_PREFIX,
    TINY_PREFIX,
    Job,
    Scenario,
    command,
    s3pull_binary,
)
from bench.server import Endpoints

_PREFIXES = {
    "medium": MEDIUM_PREFIX,
    "mid": MID_PREFIX,
    "small": SMALL_PREFIX,
    "tiny": TINY_PREFIX,
}


@dataclass
class ClientResult:
    name: str
    label: str
    status: str = "ok"  # "ok", "FAIL" or "n/a"
    note: str = ""
    command: str = ""  # the command line of the counted runs
    runs: list[dict] = field(default_factory=list)
    median: float | None = None
    min: float | None = None
    max: float | None = None
    peak_rss: int | None = None
    cpu_s_per_gb: float | None = None
    ratio_to_best_peer: float | None = None
    ratio_to_baseline: float | None = None  # s3pull's median / s3pull-base's (--baseline)


@dataclass
class ScenarioResult:
    name: str
    title: str
    profile: str
    dest: str
    unit: str
    bytes: int
    objects: int
    clients: list[ClientResult]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Context:
    endpoints: Endpoints
    dataset: data.DataSet
    out_roots: dict[str, Path]  # "shm" / "disk" -> directory for outputs
    logs: Path
    env: dict[str, str]
    runs: int
    log: object = print


def _expected(scenario: Scenario, dataset: data.DataSet) -> list[data.Entry]:
    if scenario.target == "large":
        return [dataset.entries[LARGE_KEY]]
    return dataset.under(_PREFIXES[scenario.target])


def _job(scenario: Scenario, ctx: Context, client: str) -> Job:
    directory = ctx.out_roots[scenario.dest] / scenario.name / client
    endpoint = ctx.endpoints.url(scenario.profile)
    if scenario.target == "large":
        return Job(endpoint, key=LARGE_KEY, dest=directory / "object.bin")
    prefix = _PREFIXES[scenario.target]
    if scenario.from_list:
        keys = tuple(e.key for e in _expected(scenario, ctx.dataset))
        list_file = ctx.logs / f"{scenario.name}.{client}.list"
        return Job(endpoint, prefix=prefix, dest=directory, keys=keys, list_file=list_file)
    return Job(endpoint, prefix=prefix, dest=directory)


def _output_dir(job: Job) -> Path:
    return job.dest.parent if job.key is not None else job.dest


def _verify(job: Job, expected: list[data.Entry]) -> str | None:
    """None if the output is exactly the expected objects, else what is wrong."""
    wanted: dict[Path, data.Entry] = {}
    for entry in expected:
        if job.key is not None:
            wanted[job.dest] = entry
        elif job.list_file is not None:
            wanted[job.dest / entry.key] = entry  # a key list lands at the full key
        else:
            wanted[job.dest / entry.key[len(job.prefix) :]] = entry
    missing = [path for path in wanted if not path.exists()]
    if missing:
        return f"{len(missing)} of {len(wanted)} file(s) missing, e.g. {missing[0].name}"
    for path, entry in wanted.items():
        size = path.stat().st_size
        if size != entry.size:
            return f"{path.name}: {size} bytes, expected {entry.size}"
        if data.md5_of(path) != entry.md5:
            return f"{path.name}: MD5 mismatch"
    found = {Path(d) / f for d, _, files in os.walk(_output_dir(job)) for f in files}
    stray = found - set(wanted)
    if stray:
        return f"{len(stray)} unexpected file(s), e.g. {sorted(stray)[0].name}"
    return None


def _clean(job: Job, dest_kind: str) -> None:
    shutil.rmtree(_output_dir(job), ignore_errors=True)
    if dest_kind == "disk":
        # Deleting the files drops their dirty pages; sync so that no writeback
        # of this run overlaps the next one.
        os.sync()


def _is_usage_error(m: measure.Measurement) -> bool:
    text = m.stderr_tail.lower()
    return m.returncode == 2 and ("usage:" in text or "unrecognized arguments" in text)


def _one_run(
    scenario: Scenario,
    ctx: Context,
    name: str,
    argv: list[str],
    tag: str,
    also: tuple[int, ...] = (),
):
    job = _job(scenario, ctx, name)
    _clean(job, scenario.dest)
    _output_dir(job).mkdir(parents=True, exist_ok=True)
    expected = _expected(scenario, ctx.dataset)
    total = sum(e.size for e in expected)
    timeout = 120 + total / 5e6  # far beyond any sane client; a hang ends as FAIL
    log_file = ctx.logs / f"{scenario.name}.{name}.{tag}.log"
    m = measure.run(argv, ctx.env, timeout, log_file, also)
    if m.timed_out:
        problem = f"timed out after {timeout:.0f} s"
    elif m.returncode != 0:
        last = m.stderr_tail.strip().splitlines()[-1:] or [""]
        problem = f"exit {m.returncode}: {last[0][:160]}"
    else:
        problem = _verify(job, expected)
    _clean(job, scenario.dest)
    return m, problem


def _throughput(scenario: Scenario, expected: list[data.Entry], wall: float) -> float:
    if scenario.per_object:
        return len(expected) / wall
    return sum(e.size for e in expected) / 1e6 / wall


def run_scenario(scenario: Scenario, selected: list[str], ctx: Context) -> ScenarioResult:
    results = {n: ClientResult(n, CLIENTS[n].label_for(_job(scenario, ctx, n))) for n in selected}
    argvs: dict[str, list[str]] = {}
    for name in selected:
        argv = command(CLIENTS[name], _job(scenario, ctx, name))
        if argv is None:
            results[name].status = "n/a"
            results[name].note = (
                "s3pull is not installed" if CLIENTS[name].is_s3pull else "no such mode"
            )
        else:
            argvs[name] = argv
            results[name].command = shlex.join(argv)
    ctx.log(f"\n== {scenario.name}: {scenario.title}")
    with contextlib.ExitStack() as fleets:
        helpers = _start_fleets(fleets, ctx, argvs, results)
        _timed_runs(scenario, ctx, argvs, results, helpers)
    return _summarized(scenario, ctx, results)


def _start_fleets(
    stack: contextlib.ExitStack,
    ctx: Context,
    argvs: dict[str, list[str]],
    results: dict[str, ClientResult],
) -> dict[str, tuple[int, ...]]:
    """Start a Celery fleet for each Celery client (kept for the scenario's
    runs, stopped with ``stack``); its argv gets ``--celery URL``. Returns the
    worker process groups each client is measured with."""
    helpers: dict[str, tuple[int, ...]] = {}
    for name in list(argvs):
        children = CLIENTS[name].fleet
        if not children:
            continue
        binary = s3pull_binary()
        assert binary is not None  # else the client has no argv
        why = fleet.available()
        if why is not None:
            results[name].status, results[name].note = "n/a", why
            ctx.log(f"  {name}: n/a ({why})")
            del argvs[name]
            continue
        try:
            started = stack.enter_context(fleet.running(binary, children, ctx.env, ctx.logs))
        except RuntimeError as error:
            results[name].status, results[name].note = "FAIL", str(error).splitlines()[0]
            ctx.log(f"  {name}: FAIL ({error})")
            del argvs[name]
            continue
        argvs[name] = [*argvs[name], "--celery", started.broker]
        results[name].command = shlex.join(argvs[name])
        helpers[name] = (started.worker_pid,)
    return helpers


def _timed_runs(
    scenario: Scenario,
    ctx: Context,
    argvs: dict[str, list[str]],
    results: dict[str, ClientResult],
    helpers: dict[str, tuple[int, ...]],
) -> None:
    """The warm-up of each client, then the interleaved counted rounds."""
    expected = _expected(scenario, ctx.dataset)

    def one_run(name: str, tag: str) -> tuple[measure.Measurement, str | None]:
        return _one_run(scenario, ctx, name, argvs[name], tag, helpers.get(name, ()))

    for run in measure.interleaved(list(argvs), ctx.runs, one_run):
        name, round_no, m, problem = run.client, run.round_no, run.measurement, run.problem
        if problem and round_no == 0:
            results[name].status = "n/a" if _is_usage_error(m) else "FAIL"
            results[name].note = (
                "not supported by this s3pull" if _is_usage_error(m) else f"warm-up: {problem}"
            )
            ctx.log(f"  warm-up {name}: {results[name].status} ({problem})")
        elif problem:
            results[name].status = "FAIL"
            results[name].note = f"run {round_no}: {problem}"
            ctx.log(f"  [{round_no}/{ctx.runs}] {name}: FAIL ({problem})")
        elif round_no:
            rate = _throughput(scenario, expected, m.wall_s)
            results[name].runs.append(
                {
                    "wall_s": m.wall_s,
                    "throughput": rate,
                    "cpu_s": m.cpu_s,
                    "peak_rss": m.peak_rss,
                    "tree_rss": m.tree_rss,
                    "maxrss": m.maxrss,
                }
            )
            unit = "obj/s" if scenario.per_object else "MB/s"
            ctx.log(
                f"  [{round_no}/{ctx.runs}] {name:<15} {rate:8.1f} {unit}  "
                f"{m.wall_s:6.2f} s  RSS {m.peak_rss / 1e6:6.1f} MB  CPU {m.cpu_s:5.2f} s"
            )


def _summarized(
    scenario: Scenario, ctx: Context, results: dict[str, ClientResult]
) -> ScenarioResult:
    expected = _expected(scenario, ctx.dataset)
    total = sum(e.size for e in expected)
    for r in results.values():
        if r.status != "ok":
            r.runs = []
            continue
        rates = [run["throughput"] for run in r.runs]
        r.median, r.min, r.max = statistics.median(rates), min(rates), max(rates)
        r.peak_rss = max(run["peak_rss"] for run in r.runs)
        r.cpu_s_per_gb = statistics.median(run["cpu_s"] / (total / 1e9) for run in r.runs)
    peers = [r.median for r in results.values() if r.median and not CLIENTS[r.name].is_s3pull]
    if peers:
        for r in results.values():
            if r.median is not None:
                r.ratio_to_best_peer = r.median / max(peers)
    base, new = results.get(BASELINE), results.get("s3pull")
    if base is not None and base.median and new is not None and new.median is not None:
        new.ratio_to_baseline = new.median / base.median
    return ScenarioResult(
        scenario.name,
        scenario.title,
        scenario.profile,
        scenario.dest,
        "obj/s" if scenario.per_object else "MB/s",
        total,
        len(expected),
        list(results.values()),
    )
