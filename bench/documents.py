"""Document benchmarks: ``python -m bench.documents [--runs 3]`` (part of ``make bench``).

A ~588 MB, 2,300-page PDF (each page a text line and a Flate-encoded
incompressible image, as a scan; made by ``s3pull.testing.write_pdf``) on
the ``wan`` profile of the same nginx endpoint as ``bench.run``. Two
scenarios, each client run the same way (one untimed warm-up that checks
its page count, then interleaved counted rounds; wall time and the peak RSS
of the whole process tree by ``measure.py``):

* ``pdf-split-wan``: download, then split into 50-page parts;
* ``pdf-text-wan``: download, then extract the text of every page.

Clients: ``s3pull pdf split|text`` (its download within the default 64 MiB
budget, PDFium in a parser process), and the seeds' approach from a peer
venv (``peers/pdf_get.py``): boto3 ``download_file`` then PyMuPDF from the
path, or pypdf over a file handle; for the split also ``get_object().read()``
then PyMuPDF from the bytes (the out-of-memory of the seeds). PyMuPDF
(AGPL) is only ever installed in that peer venv. Results:
``bench/results/documents.json``, the BENCHMARKS.md rows on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench import data, measure, provision, report, server
from bench.consumers import _write_manifest
from bench.run import WORK, _client_env
from bench.scenarios import s3pull_binary

BENCH = Path(__file__).resolve().parent
PDF_KEY = "docs/scan.pdf"
PAGES = 2300
PADDING = 254_000
PEER = "pdf"
OUT = WORK / "out" / "documents"  # on disk, as a worker's temp and output are
SCENARIOS = ("pdf-split-wan", "pdf-text-wan")


def ensure_data(log=print) -> data.DataSet:
    from s3pull.testing import write_pdf

    root = (WORK / f"documents-data-{PAGES}").resolve()
    if (root / "meta.json").exists():
        meta = json.loads((root / "meta.json").read_text())
        return data.DataSet(root, {k: data.Entry(**e) for k, e in meta["entries"].items()})
    log(f"generating the {PAGES}-page PDF in {root} (once) ...")
    path = root / data.BUCKET / PDF_KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pdf(path, PAGES, padding=PADDING)
    md5, crc = data._digests(path)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    entries = {PDF_KEY: data.Entry(PDF_KEY, path.stat().st_size, md5, stamp, crc)}
    return _write_manifest(root, entries, 0, 0)[0]


def _clients(endpoint: str, scenario: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (label, argv); every one prints ``pages N`` or leaves N parts."""
    action = "split" if scenario == "pdf-split-wan" else "text"
    s3pull = str(s3pull_binary())
    url = f"s3://{data.BUCKET}/{PDF_KEY}"
    target = [str(OUT)] if action == "split" else ["-o", str(OUT / "scan.txt")]
    clients = {
        "s3pull": (
            f"s3pull pdf {action} (pypdfium2, parser process)",
            [s3pull, "pdf", action, url, *target, "-q", "--endpoint-url", endpoint],
        )
    }
    python = str(provision.venv_python(PEER))
    peer = [python, str(BENCH / "peers" / "pdf_get.py"), "--endpoint", endpoint]
    peer += ["--bucket", data.BUCKET, "--key", PDF_KEY, "--dest", str(OUT), "--action", action]
    libs = [("pymupdf", "boto3 download_file + PyMuPDF (path)")]
    if action == "split":
        libs.append(("pymupdf-bytes", "boto3 get_object().read() + PyMuPDF (bytes)"))
    libs.append(("pypdf", "boto3 download_file + pypdf (file handle)"))
    for lib, label in libs:
        clients[lib] = (label, [*peer, "--lib", lib])
    return clients


def _check(scenario: str, m: measure.Measurement) -> str | None:
    """Why a run does not count (None if it does)."""
    if m.returncode != 0:
        return f"exit {m.returncode}: {m.stderr_tail.strip()[-300:]}"
    if scenario == "pdf-split-wan":
        parts = sorted(p.name for p in OUT.glob("scan.p*.pdf"))
        if len(parts) != -(-PAGES // 50):
            return f"{len(parts)} parts"
    else:
        text = (OUT / "scan.txt").read_text(encoding="utf-8")
        if text.count("\f") != PAGES or f"Page {PAGES} of" not in text:
            return "text incomplete"
    return None


def run_scenario(scenario: str, endpoint: str, size: int, runs: int, logs: Path) -> dict:
    clients = _clients(endpoint, scenario)
    env = _client_env()
    results: dict[str, dict] = {
        name: {"label": label, "status": "ok", "runs": []} for name, (label, _) in clients.items()
    }
    print(f"\n== {scenario}")

    def one_run(name: str, tag: str) -> tuple[measure.Measurement, str | None]:
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        m = measure.run(clients[name][1], env, 600, logs / f"{scenario}.{name}.{tag}.log")
        return m, _check(scenario, m)

    for run in measure.interleaved(list(clients), runs, one_run):
        name, m = run.client, run.measurement
        if run.problem is not None:
            results[name]["status"] = f"FAIL ({run.problem})"
            print(f"  [{run.round_no}] {name}: FAIL ({run.problem})")
        elif run.round_no:
            results[name]["runs"].append({"wall_s": m.wall_s, "peak_rss": m.peak_rss})
            print(
                f"  [{run.round_no}/{runs}] {name:<14} {m.wall_s:6.2f} s  "
                f"RSS {m.peak_rss / 1e6:6.1f} MB  CPU {m.cpu_s:5.2f} s"
            )
    for r in results.values():
        if r["runs"]:
            r["median_s"] = statistics.median(x["wall_s"] for x in r["runs"])
            r["peak_rss_mb"] = max(x["peak_rss"] for x in r["runs"]) / 1e6
    return {"scenario": scenario, "bytes": size, "pages": PAGES, "clients": results}


def table(out: list[dict]) -> str:
    """The BENCHMARKS.md rows: wall time and peak RSS, and both as ratios to
    boto3 + PyMuPDF of the same run (the machine is shared: ratios travel)."""
    lines = [
        "| scenario | client | wall (median) | peak RSS (tree, max) "
        "| time / PyMuPDF | RSS / PyMuPDF |",
        "|---|---|---|---|---|---|",
    ]
    for s in out:
        ref = s["clients"].get("pymupdf", {})
        for r in s["clients"].values():
            if "median_s" not in r:
                lines.append(f"| {s['scenario']} | {r['label']} | {r['status']} | | | |")
                continue
            time_ratio = f"{r['median_s'] / ref['median_s']:.2f}x" if "median_s" in ref else ""
            rss_ratio = f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x" if "median_s" in ref else ""
            lines.append(
                f"| {s['scenario']} | {r['label']} | {r['median_s']:.2f} s | "
                f"{r['peak_rss_mb']:.0f} MB | {time_ratio} | {rss_ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.documents", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", default=",".join(SCENARIOS))
    parser.add_argument(
        "--append",
        type=Path,
        metavar="MD",
        help="add (or replace) the Documents section of this Markdown file "
        "(bench.run does it for BENCHMARKS.md after a complete run)",
    )
    args = parser.parse_args(argv)
    if s3pull_binary() is None:
        sys.exit("run with the interpreter of the venv where s3pull is installed")
    provision.ensure_nginx()
    provision.ensure_venv(PEER)
    WORK.mkdir(parents=True, exist_ok=True)
    dataset = ensure_data()
    size = dataset.entries[PDF_KEY].size
    logs = WORK / "logs-documents"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    try:
        with server.running(WORK, dataset) as endpoints:
            out = [
                run_scenario(scenario, endpoints.wan, size, args.runs, logs)
                for scenario in args.scenario.split(",")
            ]
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    versions = {
        "s3pull": report.s3pull_version(s3pull_binary()),
        **{
            dist: provision.package_version(provision.venv_python(PEER), dist)
            for dist in ("boto3", "pymupdf", "pypdf")
        },
    }
    path = BENCH / "results" / "documents.json"
    summary = {"date": time.strftime("%Y-%m-%d"), "runs": args.runs, "versions": versions}
    path.write_text(json.dumps({**summary, "results": out}, indent=1))
    text = section(out, size, args.runs, versions)
    print("\n" + text)
    if args.append is not None:
        write_section(args.append, text)
    print(f"wrote {path}" + (f", {args.append}" if args.append else ""))
    return 0


HEADING = "## Documents (PDF)"


def section(out: list[dict], size: int, runs: int, versions: dict[str, str]) -> str:
    used = ", ".join(f"{name} {version.split(',')[0]}" for name, version in versions.items())
    return (
        f"{HEADING}: {size / 1e6:.0f} MB, {PAGES}-page PDF, wan, download + split or text\n\n"
        f"`python -m bench.documents` ({runs} interleaved runs, medians; peak RSS of the "
        f"whole process tree, parser process included; {used}). The machine is shared: "
        "compare the ratios to boto3 + PyMuPDF of the same run.\n\n"
        f"{table(out)}\n"
    )


def write_section(path: Path, text: str) -> None:
    """Put ``text`` in ``path`` in place of its Documents section (before the
    charts, or at the end)."""
    old = path.read_text() if path.exists() else ""
    if HEADING in old:
        start = old.index(HEADING)
        end = old.find("\n## ", start + 1)
        old = old[:start] + (old[end + 1 :] if end != -1 else "")
    charts = old.find("## Charts")
    where = charts if charts != -1 else len(old)
    path.write_text(old[:where].rstrip("\n") + "\n\n" + text + "\n" + old[where:])


if __name__ == "__main__":
    sys.exit(main())
