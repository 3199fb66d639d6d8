"""``s3pull.documents`` end to end: real PDFs (made here), a real parser
process, sources on the fault-injecting S3 server and on disk; bad input,
errors and cancellations that leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3pull
from s3pull import (
    AsyncClient,
    Client,
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    LocalError,
    PageRangeError,
    TooLargeError,
    documents,
)
from s3pull._cli import main
from s3pull.testing import FaultServer, page_text, write_pdf

from ..support import leftovers

PAGES = 7


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "contract.pdf"
    path.parent.mkdir()
    write_pdf(path, PAGES)
    return path


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where downloads' private temp directories go, to check they are removed."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def parser_processes() -> list[int]:
    """The parser processes this test process has running."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"s3pull.documents._worker" in cmdline:
            found.append(int(entry))
    return found


def texts_of(path: Path) -> list[str]:
    return [text for _, text in documents.extract_text(path)]


# -- info, split, text ---------------------------------------------------------


def test_info_of_a_local_pdf(pdf: Path) -> None:
    found = documents.info(pdf)
    assert (found.pages, found.size, found.encrypted) == (PAGES, pdf.stat().st_size, False)
    assert found.version == 17 and found.title is None


def test_split_parts_reopen_with_their_pages_and_text(pdf: Path, tmp_path: Path) -> None:
    parts = documents.split_pdf(pdf, tmp_path / "parts", pages_per_part=3)

    names = ["contract.p0001-0003.pdf", "contract.p0004-0006.pdf", "contract.p0007-0007.pdf"]
    assert [part.path.name for part in parts] == names
    assert leftovers(tmp_path / "parts") == names  # no temp file either
    for part in parts:
        assert documents.info(part.path).pages == part.pages
        assert part.size == part.path.stat().st_size
        expected = [page_text(n) for n in range(part.first, part.last + 1)]
        assert texts_of(part.path) == expected


def test_split_by_ranges(pdf: Path, tmp_path: Path) -> None:
    parts = documents.split_pdf(pdf, tmp_path / "out", ranges="1-2,3-7")
    assert [(p.first, p.last) for p in parts] == [(1, 2), (3, 7)]
    assert texts_of(parts[1].path) == [page_text(n) for n in range(3, 8)]


def test_text_of_chosen_pages_and_to_a_file(pdf: Path, tmp_path: Path) -> None:
    assert list(documents.extract_text(pdf, pages="6-7,2")) == [
        (6, page_text(6)),
        (7, page_text(7)),
        (2, page_text(2)),
    ]
    out = tmp_path / "out" / "contract.txt"
    out.parent.mkdir()
    assert documents.extract_text_to(pdf, out) == PAGES
    pages = out.read_text(encoding="utf-8").split(documents.PAGE_BREAK)
    assert pages == [page_text(n) for n in range(1, PAGES + 1)] + [""]
    assert leftovers(out.parent) == ["contract.txt"]


def test_progress_counts_pages(pdf: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    documents.split_pdf(pdf, tmp_path / "p", pages_per_part=4, on_pages=lambda *a: seen.append(a))
    assert seen == [(4, 7), (7, 7)]


def test_encrypted_pdf_needs_its_password(pdf: Path, tmp_path: Path) -> None:
    pikepdf = pytest.importorskip("pikepdf")
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(pdf) as source:
        source.save(locked, encryption=pikepdf.Encryption(user="secret", owner="owner"))

    with pytest.raises(EncryptedDocumentError, match="needs a password"):
        documents.info(locked)
    with pytest.raises(EncryptedDocumentError, match="password is wrong"):
        documents.split_pdf(locked, tmp_path / "parts", password="guess")
    assert not (tmp_path / "parts").exists() or leftovers(tmp_path / "parts") == []

    found = documents.info(locked, password="secret")
    assert (found.pages, found.encrypted) == (PAGES, True)
    parts = documents.split_pdf(locked, tmp_path / "parts", password="secret", pages_per_part=7)
    assert texts_of(parts[0].path) == [page_text(n) for n in range(1, PAGES + 1)]


def test_the_password_comes_from_the_environment_when_not_given(
    pdf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pikepdf = pytest.importorskip("pikepdf")
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(pdf) as source:
        source.save(locked, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    assert main(["pdf", "info", str(locked), "--json"]) == 1
    assert "needs a password" in capsys.readouterr().err

    monkeypatch.setenv("S3PULL_PDF_PASSWORD", "secret")
    assert documents.info(locked).pages == PAGES  # the library's default too
    assert main(["pdf", "info", str(locked), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pages"] == PAGES
    assert main(["pdf", "info", str(locked), "--password", "guess"]) == 1  # the option wins
    assert "password is wrong" in capsys.readouterr().err


# -- bad input -----------------------------------------------------------------


def _fake(path: Path, good: Path) -> None:
    path.write_text("<html>not found</html>\n")


def _truncated(path: Path, good: Path) -> None:
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _damaged(path: Path, good: Path) -> None:
    data = bytearray(good.read_bytes())
    data[9:-6] = bytes(len(data) - 15)  # header and %%EOF kept, everything between zeroed
    path.write_bytes(data)


def _no_pages(path: Path, good: Path) -> None:
    write_pdf(path, 0)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (_fake, CorruptDocumentError, "is not a PDF (it starts with '<html>"),
        (_truncated, CorruptDocumentError, "is truncated"),
        (_damaged, CorruptDocumentError, "is not a readable PDF"),
        (_no_pages, EmptyDocumentError, "has no pages"),
    ],
)
def test_bad_documents_are_typed_errors_and_write_nothing(
    make: object, error: type[DocumentError], message: str, pdf: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pdf"
    make(bad, pdf)  # type: ignore[operator]
    out = tmp_path / "out"
    out.mkdir()
    for call in (
        lambda: documents.info(bad),
        lambda: documents.split_pdf(bad, out),
        lambda: list(documents.extract_text(bad)),
        lambda: documents.extract_text_to(bad, out / "bad.txt"),
    ):
        with pytest.raises(error) as raised:
            call()
        assert message in str(raised.value)
    assert leftovers(out) == []
    assert parser_processes() == []


def test_pages_outside_the_document_write_nothing(pdf: Path, tmp_path: Path) -> None:
    with pytest.raises(PageRangeError, match=r"'5-9' is outside the document \(7 pages\)"):
        documents.split_pdf(pdf, tmp_path / "out", ranges="1-4,5-9")
    with pytest.raises(PageRangeError):
        list(documents.extract_text(pdf, pages=[8]))
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_a_destination_that_cannot_be_written(pdf: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LocalError, match="cannot"):
        documents.split_pdf(pdf, tmp_path / "file" / "parts")
    with pytest.raises(LocalError, match="no such file"):
        documents.info(tmp_path / "missing.pdf")


# -- cancellation and a dying parser -------------------------------------------


@pytest.fixture
def long_pdf(tmp_path: Path) -> Path:
    """Long enough to split that the test can act in the middle of it."""
    path = tmp_path / "long.pdf"
    write_pdf(path, 400, padding=64 * 1024)
    return path


async def test_cancelling_a_split_kills_the_parser_and_leaves_nothing(
    long_pdf: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    task: asyncio.Task[object] | None = None

    def cancel_now(done: int, total: int) -> None:
        assert task is not None and done < total
        task.cancel()

    task = asyncio.ensure_future(
        documents.split_pdf_async(long_pdf, out, pages_per_part=10, on_pages=cancel_now)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    assert parser_processes() == []
    assert leftovers(out) == []  # neither parts nor temp files


async def test_a_parser_killed_midway_is_an_error_and_leaves_nothing(
    long_pdf: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    def kill_parser(done: int, total: int) -> None:
        for pid in parser_processes():
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(DocumentError, match="killed by SIGKILL"):
        await documents.split_pdf_async(long_pdf, out, pages_per_part=10, on_pages=kill_parser)
    assert leftovers(out) == []


async def test_leaving_a_text_iteration_early_stops_the_parser(long_pdf: Path) -> None:
    texts = documents.extract_text_async(long_pdf)
    async for number, _ in texts:
        assert number == 1
        break
    await texts.aclose()
    assert parser_processes() == []


# -- sources on S3 ---------------------------------------------------------------


async def test_split_and_text_of_an_s3_object(
    s3: FaultServer, pdf: Path, tmp_path: Path, private_tmp: Path
) -> None:
    s3.put_object("legal", "2024/contract.pdf", pdf)
    async with AsyncClient(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        found = await documents.info_async("s3://legal/2024/contract.pdf", client=client)
        parts = await documents.split_pdf_async(
            "s3://legal/2024/contract.pdf", tmp_path / "parts", ranges="1-3", client=client
        )
        source = "s3://legal/2024/contract.pdf"
        texts = [pair async for pair in documents.extract_text_async(source, client=client)]
    assert found.pages == PAGES
    assert [part.path.name for part in parts] == ["contract.p0001-0003.pdf"]
    assert texts == [(n, page_text(n)) for n in range(1, PAGES + 1)]
    assert leftovers(private_tmp) == []  # every download's temp directory is gone


def test_a_bad_s3_object_leaves_no_download_behind(
    s3: FaultServer, tmp_path: Path, private_tmp: Path
) -> None:
    s3.put_object("legal", "fake.pdf", b"%PDF-1.7\nnot really\n")
    with (
        Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client,
        pytest.raises(CorruptDocumentError, match=r"fake\.pdf is truncated"),
    ):
        documents.split_pdf("s3://legal/fake.pdf", tmp_path / "out", client=client)
    assert leftovers(private_tmp) == []


def test_read_json_and_text_of_small_objects(s3: FaultServer) -> None:
    s3.put_object("chat", "doc/metadata.json", b'{"title": "Contract", "pages": 7}')
    s3.put_object("chat", "doc/notes.txt", "Signed ✓".encode())
    with Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client:
        meta = documents.read_json("s3://chat/doc/metadata.json", client=client)
        notes = documents.read_text("s3://chat/doc/notes.txt", client=client)
    assert meta == {"title": "Contract", "pages": 7}
    assert notes == "Signed ✓"


def test_an_object_above_max_bytes_is_refused_before_its_body_is_read(s3: FaultServer) -> None:
    s3.put_object("chat", "doc/metadata.json", b"[" + b"1," * 5000 + b"1]")
    with (
        Client(endpoint_url=s3.endpoint_url, subscribers=[]) as client,
        pytest.raises(TooLargeError, match=r"10003 bytes: larger than max_bytes \(4096\)"),
    ):
        documents.read_json("s3://chat/doc/metadata.json", max_bytes=4096, client=client)
    assert [r.method for r in s3.requests] == ["HEAD"]


def test_small_local_objects(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"a": 1}')
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    assert documents.read_json(tmp_path / "m.json") == {"a": 1}
    with pytest.raises(TooLargeError):
        documents.read_text(tmp_path / "m.json", max_bytes=3)
    with pytest.raises(DocumentError, match="not JSON"):
        documents.read_json(tmp_path / "bad.json")
    with pytest.raises(DocumentError, match="not utf-8 text"):
        documents.read_text(tmp_path / "latin.txt")
    assert documents.read_text(tmp_path / "latin.txt", encoding="latin-1") == "café"


# -- the command line ----------------------------------------------------------


def test_cli_info_split_and_text(
    pdf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pdf", "info", str(pdf), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pages"] == 7 and info["version"] == "1.7" and info["encrypted"] is False

    assert (
        main(["pdf", "split", str(pdf), str(tmp_path / "p"), "--ranges", "1-5,6-7", "--json"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and '"first": 6, "last": 7' in lines[1]
    assert leftovers(tmp_path / "p") == ["contract.p0001-0005.pdf", "contract.p0006-0007.pdf"]

    assert main(["pdf", "text", str(pdf), "--pages", "2", "--progress", "none"]) == 0
    assert capsys.readouterr().out == page_text(2) + "\f"

    out = tmp_path / "c.txt"
    assert main(["pdf", "text", str(pdf), "-o", str(out), "-q"]) == 0
    assert out.read_text().count("\f") == PAGES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pdf", "info", "{fake}"], "fake.pdf is not a PDF"),
        (["pdf", "split", "{pdf}", "{out}", "--ranges", "3-99"], "outside the document"),
        (["pdf", "text", "{pdf}", "--pages", "x"], "bad page range 'x'"),
        (["pdf", "split", "{pdf}", "{out}", "--pages-per-part", "0"], "at least 1"),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, pdf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fake.pdf").write_text("hello")
    paths = {"fake": tmp_path / "fake.pdf", "pdf": pdf, "out": tmp_path / "out"}
    code = main([arg.format(**paths) for arg in args])
    err = capsys.readouterr().err
    assert code in (1, 2) and err.startswith("s3pull: error: ") and message in err
    assert err.count("\n") == 1, err
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the CLI's and its parser's)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


@contextlib.contextmanager
def _splitting(long_pdf: Path, out: Path, marker: str) -> Iterator[subprocess.Popen[str]]:
    """``s3pull pdf split`` in a subprocess (its and its parser's environment
    marked with ``marker``), once it has written its first part."""
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    argv = [sys.executable, "-m", "s3pull", "pdf", "split", str(long_pdf), str(out)]
    with subprocess.Popen(
        [*argv, "--pages-per-part", "10", "--progress", "plain"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as cli:
        assert cli.stderr is not None
        assert "pages" in cli.stderr.readline()  # the first part is written
        yield cli


def test_ctrl_c_during_a_split_kills_the_parser_and_leaves_nothing(
    long_pdf: Path, tmp_path: Path
) -> None:
    marker = f"S3PULL_TEST_MARK={os.getpid()}-{tmp_path.name}"
    out = tmp_path / "out"
    with _splitting(long_pdf, out, marker) as cli:
        assert cli.stderr is not None
        parsers = [pid for pid in _processes_with(marker) if pid != cli.pid]
        assert len(parsers) == 1
        os.kill(parsers[0], signal.SIGSTOP)  # hold it mid-split, whatever the machine's speed
        cli.send_signal(signal.SIGINT)
        err = cli.stderr.read()
        assert cli.wait(timeout=60) == 130
    assert err.endswith("s3pull: interrupted; no partial files left\n"), err
    assert _processes_with(marker) == []
    assert leftovers(out) == []


def test_a_split_killed_outright_leaves_a_staging_directory_that_clean_removes(
    long_pdf: Path, tmp_path: Path
) -> None:
    marker = f"S3PULL_TEST_MARK={os.getpid()}-{tmp_path.name}"
    out = tmp_path / "out"
    with _splitting(long_pdf, out, marker) as cli:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)  # the CLI and its parser: no cleanup at all
        cli.wait(timeout=60)
    [staging] = out.iterdir()
    assert staging.name.startswith(".s3pull-split-") and any(staging.iterdir())
    assert s3pull.clean(out, dry_run=True) == [staging]
    assert main(["clean", str(out)]) == 0
    assert list(out.iterdir()) == []


def test_a_plain_download_loads_no_pdf_library(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("plain", "k", b"data")
    code = (
        "import sys\n"
        "from s3pull._cli import main\n"
        "assert main(sys.argv[1:]) == 0\n"
        "print(sorted(m for m in sys.modules if 'pdfium' in m or 'documents' in m))\n"
    )
    args = ["cp", "s3://plain/k", str(tmp_path / "k"), "--endpoint-url", s3.endpoint_url, "-q"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_split_into_single_pages_needs_few_file_descriptors(
    long_pdf: Path, tmp_path: Path
) -> None:
    # 400 parts under a limit of 128 open files: one part's file is open at a time.
    import resource

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    argv = [sys.executable, "-m", "s3pull", "pdf", "split", str(long_pdf), str(tmp_path / "p")]
    done = subprocess.run(
        [*argv, "--pages-per-part", "1", "-q"],
        preexec_fn=few_files,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    names = leftovers(tmp_path / "p")
    assert len(names) == 400 and names[0] == "long.p0001-0001.pdf"
