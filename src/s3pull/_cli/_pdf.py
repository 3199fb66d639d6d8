"""``s3pull pdf info|split|text``: the documents API on the command line.

SRC is an ``s3://`` or ``http(s)://`` URL (downloaded into a private temp
directory within ``--memory-limit``, removed afterwards) or a local path.
Progress on stderr: the download's, as ``cp`` shows it, then the pages'.
A bad document is one line and exit 1, with nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._config import PDF_PASSWORD_ENV
from .._units import format_size
from ._commands import _client, _progress
from ._progress import PLAIN_PROGRESS_SECONDS, PROGRESS_MODES, Clock, _console, _RichProgress


def add_commands(
    commands: Any,
    parents: list[argparse.ArgumentParser],
    add_budget_options: Callable[[argparse._ArgumentGroup], None],
) -> None:
    """The ``pdf`` command and its ``info``, ``split`` and ``text``."""
    pdf = commands.add_parser(
        "pdf",
        help="PDF info, split into parts, extract text (s3pull[pdf])",
        description="Read a PDF from S3, HTTP(S) or a local path without loading it into "
        "memory: it is downloaded to a temp file and parsed by a separate process.",
    )
    pdf.set_defaults(handler=_pdf)
    actions = pdf.add_subparsers(dest="pdf_command", required=True, metavar="ACTION")
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--password",
        help=f"the password of an encrypted PDF (default: {PDF_PASSWORD_ENV}, which, unlike "
        "an argument, other users cannot read in the process list)",
    )
    options.add_argument("--json", action="store_true", help="print JSON on stdout")
    options.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="download and page progress on stderr (default: auto, bars on a terminal)",
    )
    add_budget_options(options.add_argument_group("transfer"))
    every = [*parents, options]

    info = actions.add_parser(
        "info", parents=every, help="pages, size, encryption and metadata of SRC"
    )
    info.add_argument("source", metavar="SRC")

    split = actions.add_parser(
        "split",
        parents=every,
        help="split SRC into parts of N pages, or by page ranges",
        description="Write parts named STEM.p0001-0050.pdf... into DIR. The parts appear "
        "only once all are complete; on any error none is left.",
    )
    split.add_argument("source", metavar="SRC")
    split.add_argument("destination", metavar="DIR")
    how = split.add_mutually_exclusive_group()
    how.add_argument("--pages-per-part", type=int, metavar="N", help="default: 50")
    how.add_argument("--ranges", metavar="R", help="page ranges, e.g. 1-100,101-250")

    text = actions.add_parser(
        "text",
        parents=every,
        help="extract the text of SRC's pages",
        description="Print the text of each page, followed by a form feed; with -o, write "
        "it to FILE (UTF-8), which appears only once complete.",
    )
    text.add_argument("source", metavar="SRC")
    text.add_argument("-o", "--output", metavar="FILE", help="write the text to FILE")
    text.add_argument("--pages", metavar="R", help="only these pages, e.g. 1-10,20")


class _Pages:
    """Page progress: a bar on a terminal, a line every few seconds
    otherwise, JSON lines for ``--progress json``, nothing for ``none``."""

    def __init__(
        self, mode: str, label: str, file: IO[str] | None = None, clock: Clock = time.monotonic
    ):
        self.mode, self.label, self.file, self.clock = mode, label, file or sys.stderr, clock
        self._next = 0.0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.mode == "bar":
            if self._bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                self._bar = Progress(
                    TextColumn(f"[bold]{self.label}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("pages"),
                    console=_console(None if self.file is sys.stderr else self.file),
                )
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done, total=total)
            return
        now = self.clock()
        if done < total and now < self._next:
            return
        self._next = now + PLAIN_PROGRESS_SECONDS
        if self.mode == "json":
            line = {"event": "pages", "source": self.label, "done": done, "total": total}
            print(json.dumps(line), file=self.file, flush=True)
        elif self.mode == "plain":
            print(f"s3pull: {self.label}: {done}/{total} pages", file=self.file, flush=True)


def _mode(args: argparse.Namespace) -> str:
    if args.quiet or args.progress == "none":
        return "none"
    if args.progress == "auto":
        return "bar" if sys.stderr.isatty() else "plain"
    return str(args.progress)


async def _pdf(args: argparse.Namespace) -> int:
    from .. import documents

    progress = _progress(args, many=False)
    bars = progress if isinstance(progress, _RichProgress) else None
    label = Path(args.source.rstrip("/")).name or args.source
    async with _client(args, [progress] if progress else []) as client:
        if bars is not None:
            bars.__enter__()
        try:
            if args.pdf_command == "info":
                found = await documents.info_async(
                    args.source, password=args.password, client=client
                )
                _print_info(found, as_json=args.json)
                return 0
            with _Pages(_mode(args), label) as pages:
                if args.pdf_command == "split":
                    parts = await documents.split_pdf_async(
                        args.source,
                        args.destination,
                        pages_per_part=args.pages_per_part,
                        ranges=args.ranges,
                        password=args.password,
                        client=client,
                        on_pages=pages,
                    )
                else:
                    return await _text(args, client, pages)
        finally:
            if bars is not None:
                bars.__exit__(None, None, None)
    _print_parts(args, parts)
    return 0


def _print_info(found: Any, *, as_json: bool) -> None:
    # "1.7", as the file's header writes it, in both forms (PDFium counts 17).
    version = f"{found.version // 10}.{found.version % 10}" if found.version else None
    if as_json:
        fields = {
            "pages": found.pages,
            "size": found.size,
            "encrypted": found.encrypted,
            "version": version,
            "metadata": found.metadata,
        }
        print(json.dumps(fields))
        return
    rows = [
        ("pages", found.pages),
        ("size", f"{found.size} ({format_size(found.size)})"),
        ("encrypted", "yes" if found.encrypted else "no"),
        ("version", version),
        *((key.lower(), value) for key, value in found.metadata.items()),
    ]
    for name, value in rows:
        if value is not None:
            print(f"{name:<10} {value}")


def _print_parts(args: argparse.Namespace, parts: list[Any]) -> None:
    for part in parts:
        if args.json:
            print(json.dumps(part.to_json()))
        elif not args.quiet:
            print(f"{part.path}\tpages {part.first}-{part.last}\t{format_size(part.size)}")
    if not args.quiet and not args.json:
        pages = sum(part.pages for part in parts)
        print(f"s3pull: {len(parts)} parts, {pages} pages", file=sys.stderr)


async def _text(args: argparse.Namespace, client: Any, pages: _Pages) -> int:
    from .. import documents

    options = {"pages": args.pages, "password": args.password, "client": client}
    if args.output is not None:
        count = await documents.extract_text_to_async(
            args.source, args.output, on_pages=pages, **options
        )
        if args.json:
            print(json.dumps({"path": args.output, "pages": count}))
        return 0
    texts = documents.extract_text_async(args.source, on_pages=pages, **options)
    try:
        async for number, text in texts:
            if args.json:
                print(json.dumps({"page": number, "text": text}, ensure_ascii=False))
            else:
                sys.stdout.write(text + documents.PAGE_BREAK)
    finally:
        await texts.aclose()
    return 0
