"""The ``s3pull`` command line: ``cp``, ``cat``, ``inventory``, ``stat`` and ``clean``.

Exit codes: 0 success, 1 a download or stat failed (for many objects: at
least one failed, the others were still downloaded), 2 bad usage or a bad
option value, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Every
failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import aclosing
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from ._client import AsyncClient
from ._config import TransferConfig
from ._errors import ConfigError, InvalidSourceError, NotFoundError, S3PullError, UnsafePathError
from ._events import LoggingSubscriber, Subscriber
from ._results import EXISTING, BatchResult, DownloadResult, ObjectInfo, ObjectOutcome
from ._source import S3Source, parse_prefix
from ._units import format_size, parse_duration, parse_size
from .consumers import InventoryRecord
from .sinks import stale_files
from .transport import ADDRESSING_STYLES

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


class _FilterRule(argparse.Action):
    """``--include`` / ``--exclude``: kept in command-line order, as the order decides."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append((self.option_strings[-1].lstrip("-"), values))
        setattr(namespace, self.dest, rules)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_budget_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--concurrency", type=_positive_int, help="ranged GETs in flight (default: 16)"
    )
    group.add_argument(
        "--memory-limit",
        type=_size,
        default=TransferConfig.memory_limit,
        help="memory budget for all buffers (default: 64MiB)",
    )


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    s3 = common.add_argument_group("store")
    s3.add_argument("--endpoint-url", help="S3 API endpoint (default: AWS_ENDPOINT_URL_S3, AWS)")
    s3.add_argument("--region", help="AWS region (default: profile / AWS_REGION)")
    s3.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    s3.add_argument(
        "--addressing-style",
        choices=ADDRESSING_STYLES,
        default="auto",
        help="path-style for custom endpoints, virtual-hosted for AWS (default: auto)",
    )
    s3.add_argument("--no-sign-request", action="store_true", help="send anonymous requests")
    s3.add_argument("--version-id", help="the S3 object version to use")
    out = common.add_argument_group("output")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    out.add_argument("--json", action="store_true", help="one JSON result per object on stdout")
    out.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = _Parser(
        prog="s3pull",
        description="Fast, memory-bounded, atomic downloads from S3 and HTTP(S).",
    )
    parser.add_argument("--version", action="version", version=f"s3pull {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    cp = commands.add_parser(
        "cp",
        parents=[common],
        help="download an object to a file or directory",
        description="Download SRC (s3://bucket/key or an http(s) URL) to DEST. DEST may be "
        "a directory. The file appears only once complete and verified.",
    )
    cp.add_argument("source", metavar="SRC", nargs="?")
    cp.add_argument("destination", metavar="DEST")
    many = cp.add_argument_group(
        "many objects",
        "With --recursive, SRC is s3://bucket/prefix and every key under it lands in the "
        "directory DEST at its path relative to the prefix's last '/'. With --from-file, "
        "FILE lists one s3:// URL or key per line (- reads stdin); bare keys are in the "
        "bucket (and under the prefix) SRC names; each lands at its full key under DEST. "
        "Keys that would escape DEST are refused and reported. A failed object never "
        "stops the others; the exit code is 1 if any failed.",
    )
    many.add_argument(
        "-r", "--recursive", action="store_true", help="download every object under SRC"
    )
    many.add_argument("--from-file", metavar="FILE", help="download the objects FILE lists")
    many.add_argument(
        "--include",
        action=_FilterRule,
        dest="filters",
        metavar="GLOB",
        help="take keys matching GLOB (with --exclude: the last match wins)",
    )
    many.add_argument(
        "--exclude",
        action=_FilterRule,
        dest="filters",
        metavar="GLOB",
        help="skip keys matching GLOB",
    )
    many.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep local files of the same size, modified no earlier than the object",
    )
    many.add_argument(
        "--fail-fast", action="store_true", help="stop at the first failure (default: go on)"
    )
    many.add_argument(
        "--dry-run",
        action="store_true",
        help="download and write nothing: print each object that would be downloaded, "
        "with its local path and size, and what would be kept or refused",
    )
    many.add_argument(
        "--objects",
        type=_positive_int,
        help=f"objects downloaded at once (default: {TransferConfig.batch_concurrency})",
    )
    tuning = cp.add_argument_group("transfer")
    tuning.add_argument("--part-size", type=_size, help="bytes per ranged GET, e.g. 16MiB")
    _add_budget_options(tuning)
    tuning.add_argument(
        "--no-verify", action="store_true", help="skip checksum verification (sizes still checked)"
    )
    tuning.add_argument(
        "--on-change",
        choices=("fail", "restart"),
        default="fail",
        help="when the object changes mid-download: fail, or restart once (default: fail)",
    )
    tuning.add_argument(
        "--no-resume",
        action="store_true",
        help="keep no crash-resume journal (default: a rerun after a crash resumes)",
    )

    cat = commands.add_parser(
        "cat",
        parents=[common],
        help="write an object to stdout, in order, fetched in parallel",
        description="Write SRC to stdout in order while it downloads: parallel ranged GETs "
        "fill a bounded window ahead of the output, so memory stays flat whatever the size.",
    )
    cat.add_argument("source", metavar="SRC")
    streaming = cat.add_argument_group("transfer")
    streaming.add_argument(
        "--window", type=_size, help="bytes held ahead of the output (default: 32MiB)"
    )
    streaming.add_argument("--part-size", type=_size, help="bytes per ranged GET (default: 4MiB)")
    _add_budget_options(streaming)

    inventory = commands.add_parser(
        "inventory",
        parents=[common],
        help="read an S3 Inventory report: count, sum sizes, or list as JSON lines",
        description="Read every data file (CSV.gz or Parquet) of the S3 Inventory whose "
        "manifest.json is MANIFEST, several at once, in bounded memory; each file's MD5 is "
        "checked against the manifest. Prints the count and/or total size asked for, one "
        "number per line (count first), or a JSON object with --json.",
    )
    inventory.add_argument("manifest", metavar="MANIFEST", help="s3://bucket/.../manifest.json")
    inventory.add_argument("--count", action="store_true", help="print the number of objects")
    inventory.add_argument("--sum-size", action="store_true", help="print their total bytes")
    inventory.add_argument(
        "--to-jsonl", metavar="FILE", help="write one JSON object per record to FILE (- = stdout)"
    )
    inventory.add_argument(
        "--filter-prefix", metavar="P", help="only keys that start with P (decoded keys)"
    )
    inventory.add_argument(
        "--download",
        metavar="DIR",
        help="download every listed object into DIR at its key's path, as the records are "
        "read (no listing of the bucket); exit 1 if any failed",
    )
    inventory.add_argument(
        "--skip-existing",
        action="store_true",
        help="with --download: keep files of the same size, modified no earlier than the object",
    )
    inventory.add_argument(
        "--objects",
        type=_positive_int,
        help=f"with --download: objects at once (default: {TransferConfig.batch_concurrency})",
    )
    inventory.add_argument(
        "--dry-run",
        action="store_true",
        help="with --download: write nothing; the summary says how many objects and bytes "
        "would be downloaded, and every key that would be refused is reported",
    )
    reading = inventory.add_argument_group("transfer")
    reading.add_argument(
        "--workers", type=_positive_int, default=4, help="data files read at once (default: 4)"
    )
    reading.add_argument(
        "--window", type=_size, default=8 << 20, help="bytes held ahead per data file (8MiB)"
    )
    _add_budget_options(reading)

    stat = commands.add_parser(
        "stat",
        parents=[common],
        help="show size, ETag, version and checksums without downloading",
    )
    stat.add_argument("source", metavar="SRC")

    clean = commands.add_parser(
        "clean",
        help="remove temp files and journals that crashed downloads left behind",
        description="Remove s3pull's own leftovers (.NAME.s3pull-XXXX.part and .journal "
        "files) under each DIR, recursively. Files a running download holds are never "
        "touched; nothing else is ever removed.",
    )
    clean.add_argument("directories", metavar="DIR", nargs="+")
    clean.add_argument(
        "--older-than",
        type=_duration,
        default=0.0,
        help="only files untouched for this long, e.g. 30m, 2h, 7d (default: any age)",
    )
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed")
    clean.add_argument("-q", "--quiet", action="store_true", help="no listing, no summary")
    clean.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


class _RichProgress(Subscriber):
    """Progress bars on a terminal (bytes, rate, ETA)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def on_queued(self, source: str, size: int) -> None:
        name = source.rsplit("/", 1)[-1] or source
        self._tasks[source] = self.progress.add_task(name, total=size)

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source in self._tasks:
            self.progress.update(self._tasks[source], completed=done)

    def on_done(self, result: DownloadResult) -> None:
        if result.source in self._tasks:
            self.progress.update(self._tasks[result.source], completed=result.bytes)


class _PlainProgress(LoggingSubscriber):
    """Throttled progress lines when stderr is not a terminal; the CLI prints
    its own summary line, so the logger's "done" line would say it twice."""

    def on_done(self, result: DownloadResult) -> None:
        pass


class _BatchBars(Subscriber):
    """Two bars for many objects: objects finished, and bytes (of the objects
    started so far: a streamed listing's total is not known in advance)."""

    def __init__(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        self.objects = Progress(
            TextColumn("[bold]{task.description}"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"),
            console=console,
        )
        self.bytes = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._live = Live(Group(self.objects, self.bytes), console=console)
        self._objects = self.objects.add_task("objects", total=None, failed="")
        self._bytes = self.bytes.add_task("bytes", total=0)
        self._total = 0
        self._started: dict[str, int] = {}

    def __enter__(self) -> _BatchBars:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def counted(self, result: BatchResult, listed: int | None) -> None:
        """The batch's outcome so far (``listed``: the total, once known)."""
        failed = f"[red]{result.failed} failed" if result.failed else ""
        self.objects.update(self._objects, completed=result.objects, total=listed, failed=failed)

    def on_queued(self, source: str, size: int) -> None:
        if source not in self._started:
            self._started[source] = 0
            self._total += size
            self.bytes.update(self._bytes, total=self._total)

    def on_progress(self, source: str, done: int, total: int) -> None:
        if source in self._started:
            self.bytes.advance(self._bytes, done - self._started[source])
            self._started[source] = done

    def on_done(self, result: DownloadResult) -> None:
        self.on_progress(result.source, result.bytes, result.bytes)
        self._started.pop(result.source, None)

    def on_error(self, source: str, error: S3PullError) -> None:
        self._started.pop(source, None)


def _client(args: argparse.Namespace, subscribers: list[Subscriber]) -> AsyncClient:
    batch = {"batch_concurrency": args.objects} if getattr(args, "objects", None) else {}
    config = TransferConfig(
        **batch,
        part_size=getattr(args, "part_size", None),
        concurrency=getattr(args, "concurrency", None),
        memory_limit=getattr(args, "memory_limit", TransferConfig.memory_limit),
        verify=not getattr(args, "no_verify", False),
        on_change=getattr(args, "on_change", "fail"),
        resume=not getattr(args, "no_resume", False),
    )
    return AsyncClient(
        config=config,
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        addressing_style=args.addressing_style,
        sign=not args.no_sign_request,
        subscribers=subscribers,
    )


def _result_json(result: DownloadResult) -> str:
    fields = asdict(result)
    fields["path"] = str(result.path)
    return json.dumps(fields)


def _info_json(info: ObjectInfo) -> str:
    fields = asdict(info)
    fields["last_modified"] = info.last_modified.isoformat() if info.last_modified else None
    return json.dumps(fields)


def _print_info(info: ObjectInfo) -> None:
    rows = [
        ("source", info.source),
        ("size", f"{info.size} ({format_size(info.size)})"),
        ("etag", info.etag),
        ("version", info.version_id),
        ("last modified", info.last_modified.isoformat() if info.last_modified else None),
        ("content type", info.content_type),
        ("content encoding", info.content_encoding),
        ("encryption", info.encryption),
    ]
    rows += [(f"checksum {name}", value) for name, value in info.checksums.items()]
    if info.checksum_type:
        rows.append(("checksum type", info.checksum_type))
    for name, value in rows:
        if value is not None:
            print(f"{name:<17} {value}")


def _outcome_json(outcome: ObjectOutcome) -> str:
    fields: dict[str, Any] = {
        "source": outcome.source,
        "path": str(outcome.path) if outcome.path is not None else None,
        "status": outcome.status,
        "bytes": outcome.bytes,
    }
    if outcome.result is not None:
        fields.update(
            seconds=outcome.result.seconds,
            attempts=outcome.result.attempts,
            etag=outcome.result.etag,
            version_id=outcome.result.version_id,
            verified=outcome.result.verified,
            resumed=outcome.result.resumed,
        )
    if outcome.size is not None:
        fields["size"] = outcome.size
    if outcome.error is not None:
        fields.update(error=type(outcome.error).__name__, message=str(outcome.error))
    return json.dumps(fields)


async def _from_file(name: str, base: S3Source | None) -> AsyncIterator[str | S3Source]:
    """The sources a ``--from-file`` file lists, read in blocks as the batch goes."""
    stream = sys.stdin if name == "-" else open(name, encoding="utf-8")  # noqa: ASYNC230, SIM115
    try:
        while lines := await asyncio.to_thread(stream.readlines, 1 << 16):
            for raw in lines:
                line = raw.rstrip("\r\n")
                if not line:
                    continue
                if "://" in line:
                    yield line
                elif base is None:
                    raise ConfigError(
                        f"{name} lists a bare key ({line[:60]!r}): give the bucket as SRC "
                        "(s3://bucket or s3://bucket/prefix/)"
                    )
                else:
                    yield S3Source(base.bucket, base.key + line)
    finally:
        if stream is not sys.stdin:
            stream.close()


def _check_many_options(args: argparse.Namespace) -> None:
    many = args.recursive or args.from_file is not None
    if args.recursive and args.from_file is not None:
        raise ConfigError("use either --recursive or --from-file, not both")
    if not many:
        extra = [
            name
            for name, used in (
                ("--include/--exclude", args.filters),
                ("--skip-existing", args.skip_existing),
                ("--fail-fast", args.fail_fast),
                ("--dry-run", args.dry_run),
                ("--objects", args.objects),
            )
            if used
        ]
        if extra:
            raise ConfigError(f"{', '.join(extra)}: only with --recursive or --from-file")
        if args.source is None:
            raise ConfigError("cp needs SRC and DEST")
        return
    if args.version_id is not None:
        raise ConfigError("--version-id applies to one object, not to --recursive or --from-file")
    if args.recursive and args.source is None:
        raise ConfigError("cp --recursive needs SRC (s3://bucket/prefix) and DEST")
    if args.from_file is not None and args.filters:
        raise ConfigError("--include/--exclude apply to --recursive listings")


async def _cp_many(args: argparse.Namespace) -> int:
    show_bars = not args.quiet and not args.json and not args.dry_run and sys.stderr.isatty()
    bars = _BatchBars() if show_bars else None
    async with _client(args, [bars] if bars else []) as client:
        if args.recursive:
            outcomes = client.iter_download_prefix(
                args.source,
                args.destination,
                filters=args.filters or (),
                skip_existing=args.skip_existing,
                fail_fast=args.fail_fast,
                dry_run=args.dry_run,
            )
        else:
            base = parse_prefix(args.source) if args.source is not None else None
            outcomes = client.iter_download_many(
                _from_file(args.from_file, base),
                args.destination,
                skip_existing=args.skip_existing,
                fail_fast=args.fail_fast,
                dry_run=args.dry_run,
            )
        result = BatchResult()
        started = time.monotonic()
        next_report = started + PLAIN_PROGRESS_SECONDS
        with bars if bars is not None else contextlib.nullcontext():
            async for outcome in outcomes:
                result.add(outcome)
                if args.json:
                    print(_outcome_json(outcome), flush=False)
                elif outcome.error is not None and not args.quiet:
                    print(f"s3pull: failed: {outcome.error}", file=sys.stderr)
                elif args.dry_run and not args.quiet:
                    print(_planned_line(outcome), flush=False)
                if bars is not None:
                    bars.counted(result, None)
                elif not args.quiet and not args.json and time.monotonic() >= next_report:
                    next_report = time.monotonic() + PLAIN_PROGRESS_SECONDS
                    # finish() has not run yet: the rate needs the time so far.
                    result.seconds = time.monotonic() - started
                    print(f"s3pull: so far {result.summary()}", file=sys.stderr)
        result.finish(time.monotonic() - started, fail_fast=args.fail_fast)
    if not args.quiet:
        dry = "dry run: " if args.dry_run else ""
        print(f"s3pull: {dry}{result.summary()}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED


def _planned_line(outcome: ObjectOutcome) -> str:
    """One object of a dry run, for the terminal."""
    size = format_size(outcome.size) if outcome.size is not None else "?"
    if outcome.source.endswith("/"):  # a directory marker
        return f"(dry run) {outcome.source} -> {outcome.path} (directory)"
    if outcome.status == EXISTING:
        return f"(dry run) keep {outcome.path} ({size}): already there"
    return f"(dry run) {outcome.source} -> {outcome.path} ({size})"


async def _cp(args: argparse.Namespace) -> int:
    _check_many_options(args)
    if args.recursive or args.from_file is not None:
        return await _cp_many(args)
    try:
        return await _cp_one(args)
    except NotFoundError as exc:
        if args.source.startswith("s3://") and args.source.endswith("/"):
            exc.message += " (to download everything under a prefix: cp --recursive)"
        raise


async def _cp_one(args: argparse.Namespace) -> int:
    show_bars = not args.quiet and not args.json and sys.stderr.isatty()
    bars = _RichProgress() if show_bars else None
    subscribers: list[Subscriber] = [bars] if bars else []
    if not args.quiet and not bars:
        subscribers.append(_PlainProgress())
    async with _client(args, subscribers) as client:
        if bars is not None:
            with bars:
                result = await client.download_file(
                    args.source, args.destination, version_id=args.version_id
                )
        else:
            result = await client.download_file(
                args.source, args.destination, version_id=args.version_id
            )
    if args.json:
        print(_result_json(result))
    elif not args.quiet:
        verified = f", {result.verified} verified" if result.verified else ""
        resumed = ""
        if result.resumed:
            resumed = f", {format_size(result.resumed)} kept from a crashed run"
        print(
            f"{result.source} -> {result.path}: {format_size(result.bytes)} in "
            f"{result.seconds:.2f} s ({format_size(result.throughput)}/s){verified}{resumed}",
            file=sys.stderr,
        )
    return 0


async def _cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    buffer = bytearray(CAT_BUFFER)
    async with (
        _client(args, []) as client,
        client.open(
            args.source,
            version_id=args.version_id,
            window=args.window,
            part_size=args.part_size,
        ) as stream,
    ):
        # The write happens in a thread, so a slow reader of the pipe never
        # stops the event loop from fetching ahead.
        while filled := await stream.readinto(buffer):
            await asyncio.to_thread(out.write, memoryview(buffer)[:filled])
        await asyncio.to_thread(out.flush)
    return 0


async def _inventory(args: argparse.Namespace) -> int:
    if args.dry_run and args.download is None:
        raise ConfigError("--dry-run: only with --download")
    count = total = 0
    out = None
    if args.to_jsonl == "-":
        out = sys.stdout
    elif args.to_jsonl:
        out = open(args.to_jsonl, "w", encoding="utf-8")  # noqa: ASYNC230, SIM115 - closed below
    batch = BatchResult()
    try:
        async with _client(args, []) as client:
            # Downloading the records needs budget too: the reader gets half.
            share = 0.5 if args.download is not None else 1.0
            reader = client.inventory(
                args.manifest, workers=args.workers, window=args.window, memory_share=share
            )

            async def records() -> AsyncIterator[InventoryRecord]:
                nonlocal count, total
                async with aclosing(reader.batches(args.filter_prefix)) as batches:
                    async for chunk in batches:
                        count += len(chunk)
                        total += sum(record.size or 0 for record in chunk)
                        if out is not None:
                            lines = "".join(json.dumps(r.to_json()) + "\n" for r in chunk)
                            await asyncio.to_thread(out.write, lines)
                        for record in chunk:
                            yield record

            if args.download is None:
                async for _ in records():
                    pass
            else:
                started = time.monotonic()
                outcomes = client.iter_download_many(
                    records(), args.download, skip_existing=args.skip_existing, dry_run=args.dry_run
                )
                async for outcome in outcomes:
                    batch.add(outcome)
                    if outcome.error is not None and not args.quiet:
                        print(f"s3pull: failed: {outcome.error}", file=sys.stderr)
                batch.finish(time.monotonic() - started, fail_fast=False)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    if args.json:
        print(json.dumps({"count": count, "size": total}))
    else:
        if args.count:
            print(count)
        if args.sum_size:
            print(total)
        quiet = args.count or args.sum_size or args.to_jsonl or args.download or args.quiet
        if not quiet:
            print(f"{count} objects, {total} bytes ({format_size(total)})")
    if args.download is not None and not args.quiet:
        dry = "dry run: " if args.dry_run else ""
        print(f"s3pull: {dry}{batch.summary()}", file=sys.stderr)
    return 0 if batch.ok else EXIT_FAILED


async def _stat(args: argparse.Namespace) -> int:
    async with _client(args, []) as client:
        info = await client.stat(args.source, version_id=args.version_id)
    if args.json:
        print(_info_json(info))
    else:
        _print_info(info)
    return 0


async def _clean(args: argparse.Namespace) -> int:
    now = time.time()
    removed = 0
    for directory in args.directories:
        if not Path(directory).is_dir():  # noqa: ASYNC240 - a local stat, before any I/O
            raise ConfigError(f"not a directory: {directory}")
        for path in stale_files(Path(directory), args.older_than, recursive=True, now=now):
            if not args.dry_run:
                try:
                    path.unlink()
                except OSError as exc:
                    print(f"s3pull: cannot remove {path}: {exc.strerror}", file=sys.stderr)
                    continue
            removed += 1
            if not args.quiet:
                print(path)
    if not args.quiet:
        verb = "would remove" if args.dry_run else "removed"
        print(f"s3pull: {verb} {removed} leftover file(s)", file=sys.stderr)
    return 0


_COMMANDS = {
    "cp": _cp,
    "cat": _cat,
    "inventory": _inventory,
    "stat": _stat,
    "clean": _clean,
}
#: Bytes ``cat`` hands to stdout per write.
CAT_BUFFER = 1 << 20
#: Without a terminal, many-object progress is one line this often.
PLAIN_PROGRESS_SECONDS = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="s3pull: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    command = _COMMANDS[args.command]
    try:
        return asyncio.run(_terminable(command(args)))
    except (ConfigError, InvalidSourceError, UnsafePathError) as exc:
        print(f"s3pull: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except S3PullError as exc:
        print(f"s3pull: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``s3pull cat ... | head``): nothing more to do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("s3pull: interrupted; nothing was left at the destination", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("s3pull: terminated; nothing was left at the destination", file=sys.stderr)
        return EXIT_TERMINATED


class _Terminated(Exception):
    """SIGTERM arrived: the command was cancelled and has cleaned up."""


async def _terminable(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command``; on SIGTERM (``kill``, a container stopping) cancel it
    like Ctrl-C, so temp files are removed before the process exits."""
    task = asyncio.ensure_future(command)
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await task
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def run() -> NoReturn:
    """The ``s3pull`` command: :func:`main`, then an immediate exit.

    By the time ``main`` returns every file is fsynced and renamed and the
    event loop's threads are joined; what is left is the interpreter freeing
    every module, which added 0.1-0.3 s to each run (1 GiB on loopback: 2.23
    -> 1.94 s, median of 5 interleaved pairs). Output is flushed first.
    """
    code = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (``| head``); main already said all it had to
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
