"""``cp --stats-json`` and ``cp --metrics-port`` as real subprocesses, and
what a plain ``cp`` does not load."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from s3pull.testing import Fault, FaultServer

from ..support import free_port, leftovers, pattern
from .test_cli_output import cli, one_error_line

MiB = 1 << 20


def test_stats_json_counts_objects_bytes_retries_and_temp_space(
    s3: FaultServer, tmp_path: Path
) -> None:
    for name, size in (("a", 3 * MiB), ("b", MiB + 1), ("c", 100)):
        s3.put_object("bucket", f"p/{name}", pattern(size))
    s3.put_object("bucket", "p/broken", b"x" * 10)
    s3.add_fault("bucket", "p/a", Fault.status(503, times=1), method="GET")
    s3.add_fault("bucket", "p/broken", Fault.status(403, code="AccessDenied"), method="GET")
    stats = tmp_path / "stats.json"
    out = tmp_path / "out"
    done = cli(s3, "cp", "-r", "s3://bucket/p/", str(out), "--stats-json", str(stats), "-q")
    assert done.returncode == 1, done.stderr  # broken failed: the numbers are written anyway
    numbers = json.loads(stats.read_text())
    assert numbers["objects"] == 3 and numbers["failed"] == 1
    assert numbers["bytes"] == 3 * MiB + MiB + 1 + 100
    assert numbers["retries"] == 1
    assert 0 < numbers["temp_high_water_bytes"] <= numbers["bytes"]
    assert numbers["peak_rss_bytes"] > 10 * MiB  # an interpreter at least
    assert numbers["seconds"] > 0
    assert leftovers(tmp_path) == ["out", "stats.json"]  # written through temp + rename


def test_stats_json_into_a_missing_directory_is_one_line_before_any_download(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object("bucket", "k", b"data")
    done = cli(s3, "cp", "s3://bucket/k", str(tmp_path / "k"), "--stats-json", "/nope/s.json")
    one_error_line(done, 2, "--stats-json")
    assert not (tmp_path / "k").exists()


def test_metrics_port_serves_metrics_while_the_copy_runs(s3: FaultServer, tmp_path: Path) -> None:
    size = 4 * MiB
    s3.put_object("bucket", "slow.bin", pattern(size))
    s3.add_fault("bucket", "slow.bin", Fault.drip(chunk=256 * 1024, interval=0.1), method="GET")
    port = free_port()
    command = [sys.executable, "-m", "s3pull", "cp", "s3://bucket/slow.bin", str(tmp_path / "s")]
    command += ["--endpoint-url", s3.endpoint_url, "--metrics-port", str(port), "-q"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=5
                ) as answer:
                    text = answer.read().decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)  # not listening yet, or already gone
                continue
            for family in text_string_to_metric_families(text):
                seen.extend(
                    s.value for s in family.samples if s.name == "s3pull_downloaded_bytes_total"
                )
            time.sleep(0.05)
        _out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    moving = [value for value in seen if 0 < value < size]
    assert len(set(moving)) >= 2, seen  # it grew while bytes arrived
    assert seen == sorted(seen)
    assert (tmp_path / "s").read_bytes() == pattern(size)


def test_a_taken_metrics_port_is_one_line(s3: FaultServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli(s3, "cp", "s3://bucket/k", str(tmp_path / "k"), "--metrics-port", str(port))
    one_error_line(done, 2, "cannot serve metrics")


def test_a_plain_cp_imports_neither_prometheus_nor_web_frameworks(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object("bucket", "k", b"data")
    code = (
        "import sys\n"
        "from s3pull._cli import main\n"
        f"code = main(['cp', 's3://bucket/k', {str(tmp_path / 'k')!r}, '-q',"
        f" '--endpoint-url', {s3.endpoint_url!r}])\n"
        "print(code, sorted(m for m in ('prometheus_client', 'starlette', 'fastapi',"
        " 's3pull.metrics', 's3pull.sse', 's3pull._cli._stats') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "0 []", done.stderr
    assert (tmp_path / "k").read_bytes() == b"data"
