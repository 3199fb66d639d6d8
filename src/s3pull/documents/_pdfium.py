"""The PDF work itself, on pypdfium2: run only inside the parser process.

PDFium reads a document lazily from its file (``FPDF_LoadDocument``: the
cross-reference table, then each object when a page needs it), so opening a
584 MB file costs a few MB, not 584. What does grow is the document's cache
of parsed objects: every page loaded (its images' data included) stays in
it until the document is closed, so text extraction of a 584 MB scan peaked
at 607 MB with one open document. Splitting and text extraction therefore
reopen the source every :data:`REOPEN_EVERY_PAGES` pages (cheap: the
cross-reference table again), and close each page as soon as it is done.
The parser process's peak RSS is then the interpreter and PDFium (~40 MB)
plus the objects of at most 100 pages (and one part), whatever the
document's size: 63 MB for the text and 75 MB for a split into 50-page parts
of a 588 MB, 2,300-page scan.

PDFium is not thread-safe: this module runs in a process of its own, one
document at a time (see ``_process``). Its errors are translated here, once,
into ``s3pull``'s: :class:`CorruptDocumentError`, :class:`EncryptedDocumentError`,
:class:`EmptyDocumentError`, :class:`PageRangeError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._config import PDF_PASSWORD_ENV
from .._errors import (
    ConfigError,
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    LocalError,
)
from ..sinks import Directory, TempFile, atomic_file, local_error
from ._plan import plan_split, select_pages

#: A split reopens the source document after this many pages were copied,
#: which empties PDFium's cache of the objects parsed so far.
REOPEN_EVERY_PAGES = 100
#: A PDF's header must start within the first 1024 bytes, and ``%%EOF`` be
#: within the last 1024 (the tolerance PDF readers have always had).
HEADER_WINDOW = 1024
#: What the metadata dictionary of :func:`describe` keeps.
METADATA_KEYS = ("Title", "Author", "Subject", "Keywords", "Creator", "Producer")

Emit = Callable[[dict[str, Any]], None]


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(f"PDF documents need s3pull[pdf] ({exc})") from None
    return pypdfium2


def check_file(path: Path) -> int:
    """Refuse what is not a complete PDF before PDFium sees it; return its size.

    PDFium repairs what it can: a file cut short opens, with the pages that
    survived, as if nothing were wrong. A split of half a contract is worse
    than an error, so a missing ``%%EOF`` is one.
    """
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            head = file.read(HEADER_WINDOW)
            file.seek(max(0, size - HEADER_WINDOW))
            tail = file.read()
    except OSError as exc:
        raise local_error(exc, "read", path) from exc
    if b"%PDF-" not in head:
        start = head[:16].decode("ascii", "replace").strip() or "nothing"
        raise CorruptDocumentError(f"{path.name} is not a PDF (it starts with {start!r})")
    if b"%%EOF" not in tail:
        raise CorruptDocumentError(f"{path.name} is truncated: no %%EOF at its end")
    return size


def open_document(path: Path, password: str | None) -> Any:
    """The open ``PdfDocument``, or the s3pull error of why it cannot be opened.

    No ``password`` means ``S3PULL_PDF_PASSWORD``'s, if it is set.
    """
    if password is None:
        password = os.environ.get(PDF_PASSWORD_ENV)
    pdfium = _pdfium()
    try:
        return pdfium.PdfDocument(str(path), password=password)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        raw = pdfium.raw
        if code == raw.FPDF_ERR_PASSWORD:
            reason = "the password is wrong" if password else "it needs a password"
            raise EncryptedDocumentError(f"{path.name} is encrypted: {reason}") from None
        if code == raw.FPDF_ERR_SECURITY:
            raise EncryptedDocumentError(
                f"{path.name} uses an unsupported encryption scheme"
            ) from None
        if code == raw.FPDF_ERR_FILE:
            raise LocalError(f"cannot read {path}") from None
        if code == raw.FPDF_ERR_SUCCESS:
            # PDFium's one refusal without an error code: a page tree with no pages.
            raise EmptyDocumentError(f"{path.name} has no pages") from None
        raise CorruptDocumentError(f"{path.name} is not a readable PDF ({exc})") from None


def page_count(document: Any, path: Path) -> int:
    count = len(document)
    if count == 0:
        raise EmptyDocumentError(f"{path.name} has no pages")
    return int(count)


def describe(path: Path, password: str | None) -> dict[str, Any]:
    """Pages, size, encryption and metadata of the PDF at ``path``."""
    size = check_file(path)
    pdfium = _pdfium()
    document = open_document(path, password)
    try:
        metadata = document.get_metadata_dict(skip_empty=True)
        revision = pdfium.raw.FPDF_GetSecurityHandlerRevision(document)
        return {
            "pages": page_count(document, path),
            "size": size,
            "encrypted": revision != -1,
            "version": document.get_version(),
            "metadata": {key: metadata[key] for key in METADATA_KEYS if key in metadata},
        }
    finally:
        document.close()


def _page_text(document: Any, number: int, path: Path) -> str:
    """The text of page ``number``; the page and its text page are closed at
    once, so PDFium never holds more than one page's objects."""
    pdfium = _pdfium()
    try:
        page = document[number - 1]
    except pdfium.PdfiumError as exc:
        raise CorruptDocumentError(f"{path.name}: page {number} is damaged ({exc})") from None
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


class _Appender:
    """The file-like ``write`` PDFium saves through, into a :class:`TempFile`."""

    def __init__(self, file: TempFile) -> None:
        self.file = file
        self.written = 0

    def write(self, data: bytes) -> int:
        self.file.append(data)
        self.written += len(data)
        return len(data)


def split(
    path: Path,
    password: str | None,
    destination: Path,
    staging: Path,
    *,
    stem: str,
    pages_per_part: int | None,
    ranges: str | None,
    emit: Emit,
) -> list[dict[str, Any]]:
    """Write every part of the plan into ``staging`` (a private directory in
    ``destination``), each through the sink (temp file, fsync, rename); once
    all are complete, rename them into ``destination`` and fsync it.

    All or nothing: an error, or this process being killed, before the last
    part is written leaves only ``staging``, which the caller removes. One
    part's file is open at a time, so a split into 10,000 single pages needs
    no more file descriptors than one into two halves.
    """
    pdfium = _pdfium()
    check_file(path)
    document = open_document(path, password)
    parts: list[dict[str, Any]] = []
    try:
        total = page_count(document, path)
        plan = plan_split(stem, total, pages_per_part=pages_per_part, ranges=ranges)
        emit({"pages": sum(p.pages for p in plan)})
        done = since_reopen = 0
        for part in plan:
            if since_reopen >= REOPEN_EVERY_PAGES:
                document.close()
                document = open_document(path, password)
                since_reopen = 0
            new = pdfium.PdfDocument.new()
            try:
                new.import_pages(document, pages=list(range(part.first - 1, part.last)))
                with atomic_file(staging / part.name) as file:
                    out = _Appender(file)
                    new.save(out)
            except pdfium.PdfiumError as exc:
                raise CorruptDocumentError(
                    f"{path.name}: pages {part.first}-{part.last} cannot be copied ({exc})"
                ) from None
            finally:
                new.close()
            done += part.pages
            since_reopen += part.pages
            span = {"first": part.first, "last": part.last}
            parts.append({"name": part.name, **span, "bytes": out.written})
            emit({"done": done})
    finally:
        document.close()
    _move_all(staging, destination, [part["name"] for part in parts])
    return parts


def _move_all(staging: Path, destination: Path, names: list[str]) -> None:
    """Rename ``names`` from ``staging`` into ``destination`` (one file system:
    each rename is atomic), then make the renames durable."""
    try:
        with (
            Directory.open(staging, create=False) as source,
            Directory.open(destination, create=False) as target,
        ):
            for name in names:
                os.replace(name, name, src_dir_fd=source.fd, dst_dir_fd=target.fd)
            target.fsync()
    except OSError as exc:
        raise local_error(exc, "move the parts into", destination) from exc


def text(
    path: Path,
    password: str | None,
    pages: str | list[int] | None,
    emit: Emit,
) -> int:
    """Emit ``{"text": [page, text]}`` for each selected page, in order;
    return how many pages were read."""
    check_file(path)
    document = open_document(path, password)
    try:
        selected = select_pages(pages, page_count(document, path))
        emit({"pages": len(selected)})
        for index, number in enumerate(selected):
            if index and index % REOPEN_EVERY_PAGES == 0:
                document.close()
                document = open_document(path, password)
            emit({"text": [number, _page_text(document, number, path)]})
        return len(selected)
    finally:
        document.close()
