"""The command line against the fault server, as real subprocesses: what it
prints (one JSON schema, errors even when quiet), what it refuses, what it
writes (atomically, like downloads) and what a signal leaves behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3pull.testing import Fault, FaultServer

from ..support import leftovers, pattern
from .test_inventory import MANIFEST, put_inventory

MiB = 1 << 20


def cli(s3: FaultServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3pull", *args, "--endpoint-url", s3.endpoint_url],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_error_line(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# --to-jsonl goes through the download sink ----------------------------------------------


def test_to_jsonl_keeps_the_old_file_when_the_inventory_fails(
    s3: FaultServer, tmp_path: Path
) -> None:
    put_inventory(s3, files=2, per_file=500, bad_md5=1)
    out = tmp_path / "records.jsonl"
    out.write_text("old\n")
    done = cli(s3, "inventory", MANIFEST, "--to-jsonl", str(out), "--count")
    one_error_line(done, 1, "MD5 mismatch")
    assert out.read_text() == "old\n"
    assert leftovers(tmp_path) == ["records.jsonl"]


def test_to_jsonl_into_a_missing_directory_creates_it(s3: FaultServer, tmp_path: Path) -> None:
    report = put_inventory(s3, files=1, per_file=10)
    out = tmp_path / "new" / "records.jsonl"
    done = cli(s3, "inventory", MANIFEST, "--to-jsonl", str(out))
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == len(report.rows)


def test_to_jsonl_interrupted_leaves_no_partial_file(s3: FaultServer, tmp_path: Path) -> None:
    put_inventory(s3, files=2, per_file=100)
    s3.add_fault("inventory", None, Fault.hang(), method="GET")
    out = tmp_path / "records.jsonl"
    command = [sys.executable, "-m", "s3pull", "inventory", MANIFEST, "--to-jsonl", str(out)]
    with subprocess.Popen(
        [*command, "--endpoint-url", s3.endpoint_url], stderr=subprocess.PIPE, text=True
    ) as child:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".records.jsonl.s3pull-*.part")):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130
    assert stderr == (
        f"s3pull: interrupted after 0 records read; {out} not written; no partial files left\n"
    )
    assert leftovers(tmp_path) == []


# one line per user error ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "directory", "latin-1"])
def test_a_bad_from_file_is_one_usage_error(s3: FaultServer, tmp_path: Path, kind: str) -> None:
    listed = tmp_path / "keys.txt"
    if kind == "directory":
        listed.mkdir()
    elif kind == "latin-1":
        listed.write_bytes("caf\xe9\n".encode("latin-1"))
    done = cli(s3, "cp", "--from-file", str(listed), "s3://bucket", str(tmp_path / "out"))
    one_error_line(done, 2, f"s3pull: error: --from-file {listed}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inventory", MANIFEST, "--version-id", "v1"], "unrecognized arguments: --version-id"),
        (["cat", "s3://bucket/k", "--json"], "unrecognized arguments: --json"),
        (["stat", "s3://bucket/k", "-q"], "unrecognized arguments: -q"),
        (["cp", "s3://bucket/k", "out", "--part-size", "1"], "must be at least 64KiB"),
    ],
)
def test_options_that_would_be_ignored_are_refused(
    s3: FaultServer, args: list[str], message: str
) -> None:
    one_error_line(cli(s3, *args), 2, message)


def test_an_anonymous_request_refused_says_so(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "private", b"x")
    s3.add_fault("bucket", "private", Fault.status(403, code="AccessDenied"))
    done = cli(s3, "cp", "s3://bucket/private", str(tmp_path / "x"), "--no-sign-request")
    one_error_line(done, 1, "the anonymous request was refused")
    assert "no AWS credentials" not in done.stderr


# -q silences progress, never errors ---------------------------------------------------------


def test_quiet_batch_still_prints_its_failures(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "p/a", b"a")
    s3.put_object("bucket", "p/b", b"b")
    s3.add_fault("bucket", "p/b", Fault.status(404, code="NoSuchKey"))
    done = cli(s3, "cp", "-r", "-q", "s3://bucket/p/", str(tmp_path))
    one_error_line(done, 1, "s3://bucket/p/b: not found")
    assert done.stdout == ""


# one JSON schema ---------------------------------------------------------------------------


def test_single_cp_json_is_the_batch_schema_on_success_and_failure(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object("bucket", "k", pattern(3 * MiB))
    s3.put_object("bucket", "p/k", b"x")
    ok = cli(s3, "cp", "s3://bucket/k", str(tmp_path / "k"), "--json", "--part-size", "1MiB")
    assert ok.returncode == 0, ok.stderr
    single = json.loads(ok.stdout)
    assert single["status"] == "downloaded" and single["error"] is None
    assert single["attempts"] == 3  # three parts, no retry: the HEAD is not an attempt
    many = cli(s3, "cp", "-r", "s3://bucket/p/", str(tmp_path / "p"), "--json")
    assert json.loads(many.stdout).keys() == single.keys()

    missing = cli(s3, "cp", "s3://bucket/missing", str(tmp_path / "m"), "--json")
    one_error_line(missing, 1, "not found")
    failed = json.loads(missing.stdout)
    assert failed.keys() == single.keys()
    assert (failed["status"], failed["error"]["type"]) == ("failed", "NotFoundError")
    assert failed["source"] == "s3://bucket/missing"


def test_stat_json_keeps_the_version_out_of_the_source(s3: FaultServer) -> None:
    s3.create_bucket("versioned", versioned=True)
    version = s3.put_object("versioned", "k", b"abc").version_id
    assert version is not None
    done = cli(s3, "stat", "s3://versioned/k", "--version-id", version, "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["source"], info["version_id"], info["size"]) == ("s3://versioned/k", version, 3)


def test_inventory_download_json_prints_one_outcome_per_object(
    s3: FaultServer, tmp_path: Path
) -> None:
    report = put_inventory(s3, files=1, per_file=5)
    for row in report.rows:
        s3.put_object("source", row.key, b"x" * (row.size or 0))
    done = cli(s3, "inventory", MANIFEST, "--download", str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(report.rows)
    assert {line["status"] for line in lines} == {"downloaded"}


# --progress ---------------------------------------------------------------------------------


def test_progress_json_reports_on_stderr(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "k", pattern(2 * MiB))
    done = cli(s3, "cp", "s3://bucket/k", str(tmp_path / "k"), "--progress", "json")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    last = json.loads(lines[-2])  # the summary line comes after it
    assert (last["event"], last["source"], last["bytes"], last["total"]) == (
        "done",
        "s3://bucket/k",
        2 * MiB,
        2 * MiB,
    )
    quiet = cli(s3, "cp", "s3://bucket/k", str(tmp_path / "k2"), "--progress", "none")
    assert len(quiet.stderr.strip().splitlines()) == 1  # the summary alone


def test_batch_bars_under_a_terminal(s3: FaultServer, tmp_path: Path) -> None:
    import os
    import pty

    for i in range(6):
        s3.put_object("bucket", f"p/{i}.bin", pattern(MiB, seed=i))
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "s3pull", "cp", "-r", "s3://bucket/p/", str(tmp_path)]
    with subprocess.Popen(
        [*command, "--endpoint-url", s3.endpoint_url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    ) as child:
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert child.wait(timeout=60) == 0
    os.close(leader)
    text = shown.decode(errors="replace")
    assert "6/6" in text  # the objects bar got its total
    assert "6.0/6.0 MiB" in text
    assert "MB/s" not in text and "bytes/s" not in text


# Ctrl-C at start-up -------------------------------------------------------------------------


def test_import_s3pull_loads_no_client() -> None:
    # Before main() is running, a Ctrl-C meets Python's default handler (a
    # traceback): the package loads its names on first use, so that window is
    # the interpreter's start and three small modules (~20 ms, was ~150 ms).
    code = "import sys, s3pull._cli; print(sorted(m for m in sys.modules if 's3pull' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['s3pull', 's3pull._cli', 's3pull._version']"


def test_cp_of_one_object_loads_no_parser(s3: FaultServer, tmp_path: Path) -> None:
    # What one download never uses stays unloaded: the consumers (inventory
    # CSV / Parquet readers) and xml.etree (listings and error bodies only).
    s3.put_object("bucket", "k", b"abc")
    code = (
        "import sys\n"
        "from s3pull._cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith("
        "('s3pull.consumers', 's3pull.scheduling._inventory', 'xml', 'decimal'))))\n"
    )
    argv = ["cp", "s3://bucket/k", str(tmp_path / "k"), "--endpoint-url", s3.endpoint_url]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[-2] == "0 []"
    assert (tmp_path / "k").read_bytes() == b"abc"


def test_ctrl_c_while_the_command_loads_is_one_line(s3: FaultServer) -> None:
    # The interrupt is raised from inside the import of the commands, the
    # largest part of start-up, so the test does not depend on timing.
    code = (
        "import builtins, os, signal, sys\n"
        "real = builtins.__import__\n"
        "def interrupting(name, *args, **kwargs):\n"
        "    if name == '_commands':\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupting\n"
        "from s3pull._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "stat", "s3://bucket/k", "--endpoint-url", s3.endpoint_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (130, "s3pull: interrupted; no partial files left\n")
