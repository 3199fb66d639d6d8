"""Consumer benchmarks: ``python -m bench.consumers [--runs 3]``.

Two scenarios on the ``wan`` profile of the same nginx endpoint as
``bench.run`` (30 ms first byte, 80 MiB/s per connection), with the same
method (one untimed warm-up that also verifies the answer, then interleaved
counted rounds, wall time and peak RSS by ``measure.py``):

* ``cat-wan``: the 1 GiB object written to ``/dev/null`` in order:
  ``s3pull cat`` vs ``s5cmd cat``. The warm-up pipes it through ``md5sum``
  and compares with the manifest; the counted runs write to /dev/null.
  With ``--baseline PATH`` (another checkout's ``s3pull`` entry point) the
  same ``s3pull cat`` by that binary runs right after s3pull in every round.
* ``csv-wan``: a gzip CSV of inventory-like rows (bucket, URL-encoded key,
  size, date, ETag, storage class; ~1 GB of text by default), every row
  parsed, its size column summed. Download-then-parse (``s3pull cp`` to
  disk, then ``gzip`` + ``csv`` over the file, as the seed pipeline does)
  vs the overlapped pipeline (``Client.iter_csv``: parsing in the caller's
  thread while the loop thread downloads; and ``AsyncClient.iter_csv``:
  parsing on a worker thread). Each prints its row count and sum, checked
  against the generator's.

The data set is generated deterministically once into
``bench/.work/consumers-data-*/``. Results: ``bench/results/consumers.json``
and a table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench import data, measure, provision, report, server
from bench.run import WORK, _client_env
from bench.scenarios import BASELINE, LARGE_KEY, s3pull_binary

BENCH = Path(__file__).resolve().parent
CSV_KEY = "inventory/data.csv.gz"
OUT = WORK / "out" / "consumers"  # on disk, as a real download-then-parse temp file is


def _write_csv(path: Path, text_bytes: int, seed: int = 7) -> tuple[int, int]:
    """Inventory-like rows, deterministic; returns (rows, sum of sizes)."""
    rng = random.Random(seed)
    rows = total = 0
    written = 0
    classes = ["STANDARD", "STANDARD_IA", "GLACIER", "INTELLIGENT_TIERING"]
    with gzip.open(path, "wb", compresslevel=6) as out:
        while written < text_bytes:
            block = io.StringIO()
            writer = csv.writer(block, quoting=csv.QUOTE_ALL)
            for _ in range(10_000):
                size = rng.randrange(0, 5 * 10**9)
                host = f"host%20{rng.randrange(999)}"  # keys are URL-encoded in inventories
                key = f"logs/{rng.randrange(1, 13):02d}/{host}/{rng.getrandbits(64):016x}.json.gz"
                etag = f"{rng.getrandbits(128):032x}"
                day = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:00:00.000Z"
                writer.writerow(["source-bucket", key, size, day, etag, rng.choice(classes)])
                rows += 1
                total += size
            chunk = block.getvalue().encode()
            out.write(chunk)
            written += len(chunk)
    return rows, total


def ensure_data(csv_mb: int, log=print) -> tuple[data.DataSet, dict]:
    root = (WORK / f"consumers-data-{csv_mb}M").resolve()
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if all("crc64nvme" in e for e in meta["entries"].values()):
            entries = {k: data.Entry(**e) for k, e in meta["entries"].items()}
            return data.DataSet(root, entries), meta
        log("adding CRC64NVME to the consumer data set's manifest (once) ...")
        entries = {}
        for key, e in meta["entries"].items():
            md5, crc = data._digests(root / data.BUCKET / key)
            entries[key] = data.Entry(key, e["size"], md5, e["last_modified"], crc)
        return _write_manifest(root, entries, meta["rows"], meta["sum"])
    log(f"generating the consumer data set in {root} (once) ...")
    started = time.monotonic()
    large = root / data.BUCKET / LARGE_KEY
    table = root / data.BUCKET / CSV_KEY
    large.parent.mkdir(parents=True, exist_ok=True)
    table.parent.mkdir(parents=True, exist_ok=True)
    data._write_random(large, data.GiB)
    rows, total = _write_csv(table, csv_mb * 10**6)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    entries = {}
    for key, path in ((LARGE_KEY, large), (CSV_KEY, table)):
        md5, crc = data._digests(path)
        entries[key] = data.Entry(key, path.stat().st_size, md5, stamp, crc)
    log(f"  done in {time.monotonic() - started:.0f} s; CSV.gz {table.stat().st_size / 1e6:.0f} MB")
    return _write_manifest(root, entries, rows, total)


def _write_manifest(
    root: Path, entries: dict[str, data.Entry], rows: int, total: int
) -> tuple[data.DataSet, dict]:
    """The TSV the server reads and meta.json (written last: it marks the set complete)."""
    dataset = data.DataSet(root, entries)
    with open(dataset.manifest_tsv, "w") as f:
        for e in entries.values():
            f.write(f"{e.key}\t{e.size}\t{e.md5}\t{e.last_modified}\t{e.crc64nvme}\n")
    meta = {"entries": {k: e.__dict__ for k, e in entries.items()}, "rows": rows, "sum": total}
    (root / "meta.json").write_text(json.dumps(meta))
    return dataset, meta


def _sh(command: str) -> list[str]:
    return ["/bin/sh", "-c", command]


def _clients(
    endpoint: str, scenario: str, baseline: Path | None = None
) -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (label, counted argv, warm-up argv that prints what is checked)."""
    s3pull = str(s3pull_binary())
    py = shlex.quote(sys.executable)
    parse = shlex.quote(str(BENCH / "parse_csv.py"))
    if scenario == "cat-wan":
        url = f"s3://{data.BUCKET}/{LARGE_KEY}"
        s5cmd = str(provision.s5cmd_binary())
        s5 = f"{s5cmd} --endpoint-url {endpoint} --log error cat {url}"
        cats = {"s3pull": ("s3pull cat", s3pull)}
        if baseline is not None:  # --baseline: the same command, interleaved right after
            cats[BASELINE] = ("s3pull cat (baseline)", shlex.quote(str(baseline)))
        clients = {}
        for name, (label, binary) in cats.items():
            s3 = f"{binary} cat {url} --endpoint-url {endpoint}"
            clients[name] = (label, _sh(f"exec {s3} > /dev/null"), _sh(f"{s3} | md5sum"))
        clients["s5cmd"] = ("s5cmd cat", _sh(f"exec {s5} > /dev/null"), _sh(f"{s5} | md5sum"))
        return clients
    url = f"s3://{data.BUCKET}/{CSV_KEY}"
    dest = OUT / "data.csv.gz"
    then = (
        f"{s3pull} cp {url} {dest} --endpoint-url {endpoint} --quiet && "
        f"{py} {parse} local {dest}; status=$?; rm -f {dest}; exit $status"
    )
    over = f"{py} {parse} iter-csv {url} --endpoint {endpoint}"
    over_async = f"{py} {parse} iter-csv-async {url} --endpoint {endpoint}"
    return {
        "cp-then-parse": ("s3pull cp to disk, then gzip + csv", _sh(then), _sh(then)),
        "iter-csv": ("Client.iter_csv (overlapped)", _sh(f"exec {over}"), _sh(over)),
        "iter-csv-async": (
            "AsyncClient.iter_csv (overlapped, parse thread)",
            _sh(f"exec {over_async}"),
            _sh(over_async),
        ),
    }


def _expected(scenario: str, dataset: data.DataSet, meta: dict) -> str:
    if scenario == "cat-wan":
        return dataset.entries[LARGE_KEY].md5
    return f"rows {meta['rows']} size {meta['sum']}"


def run_scenario(scenario, endpoint, dataset, meta, runs, logs, baseline=None) -> dict:
    clients = _clients(endpoint, scenario, baseline)
    expected = _expected(scenario, dataset, meta)
    size = dataset.entries[LARGE_KEY if scenario == "cat-wan" else CSV_KEY].size
    env = _client_env()
    print(f"\n== {scenario}")

    def one_run(name: str, tag: str) -> tuple[measure.Measurement, str | None]:
        _, argv, warm = clients[name]
        if tag == "warmup":  # the warm-up's output is what is checked
            m = measure.run(warm, env, 600, logs / f"{scenario}.{name}.warmup.log")
            ok = m.returncode == 0 and expected in m.stderr_tail
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            m = measure.run(argv, env, 600, logs / f"{scenario}.{name}.{tag}.log")
            ok = m.returncode == 0 and (scenario == "cat-wan" or expected in m.stderr_tail)
        return m, None if ok else m.stderr_tail.strip()[-300:]

    results: dict[str, dict] = {
        name: {"label": label, "status": "ok", "runs": []}
        for name, (label, _, _) in clients.items()
    }
    for run in measure.interleaved(list(clients), runs, one_run):
        name, m = run.client, run.measurement
        if run.problem is not None:
            results[name]["status"] = "FAIL"
            where = "warm-up" if run.round_no == 0 else f"[{run.round_no}]"
            print(f"  {where} {name}: FAIL ({run.problem})")
        elif run.round_no:
            results[name]["runs"].append(
                {"wall_s": m.wall_s, "peak_rss": m.peak_rss, "cpu_s": m.cpu_s}
            )
            rate = size / 1e6 / m.wall_s
            print(
                f"  [{run.round_no}/{runs}] {name:<15} {m.wall_s:6.2f} s  {rate:7.1f} MB/s"
                f"  RSS {m.peak_rss / 1e6:6.1f} MB  CPU {m.cpu_s:5.2f} s"
            )
    for r in results.values():
        if r["runs"]:
            r["median_s"] = statistics.median(x["wall_s"] for x in r["runs"])
            r["mb_per_s"] = size / 1e6 / r["median_s"]
            r["peak_rss_mb"] = max(x["peak_rss"] for x in r["runs"]) / 1e6
    new, base = results.get("s3pull", {}), results.get(BASELINE, {})
    if "mb_per_s" in new and "mb_per_s" in base:
        new["ratio_to_baseline"] = new["mb_per_s"] / base["mb_per_s"]
    return {"scenario": scenario, "bytes": size, "clients": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consumers", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", default="cat-wan,csv-wan")
    parser.add_argument(
        "--csv-mb", type=int, default=1000, help="MB of CSV text before gzip (default: 1000)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="PATH",
        help=f"another checkout's s3pull entry point: adds {BASELINE} to cat-wan, "
        "interleaved with s3pull (A/B of two commits)",
    )
    args = parser.parse_args(argv)
    if s3pull_binary() is None:
        sys.exit("run with the interpreter of the venv where s3pull is installed")
    versions = {"s3pull": report.s3pull_version(s3pull_binary())}
    if args.baseline is not None:
        provision.compile_s3pull(binary=args.baseline)
        versions[BASELINE] = report.s3pull_version(args.baseline)
    provision.ensure_nginx()
    provision.ensure_venv("s5cmd")
    WORK.mkdir(parents=True, exist_ok=True)
    dataset, meta = ensure_data(args.csv_mb)
    logs = WORK / "logs-consumers"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    try:
        with server.running(WORK, dataset) as endpoints:
            out = [
                run_scenario(scenario, endpoints.wan, dataset, meta, args.runs, logs, args.baseline)
                for scenario in args.scenario.split(",")
            ]
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    path = BENCH / "results" / "consumers.json"
    path.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "runs": args.runs,
                "versions": versions,
                "results": out,
            },
            indent=1,
        )
    )
    for s in out:
        print(f"\n{s['scenario']} ({s['bytes'] / 1e6:.0f} MB)")
        for name, r in s["clients"].items():
            if r["status"] != "ok" or not r["runs"]:
                print(f"  {name:<15} {r['status']}")
                continue
            print(
                f"  {name:<15} median {r['median_s']:6.2f} s  {r['mb_per_s']:7.1f} MB/s  "
                f"peak RSS {r['peak_rss_mb']:6.1f} MB   ({r['label']})"
                + (f"  {r['ratio_to_baseline']:.2f}x base" if "ratio_to_baseline" in r else "")
            )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
