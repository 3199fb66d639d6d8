"""The commands: ``cp``, ``cat``, ``inventory``, ``stat`` and ``clean``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .._clean import clean
from .._client import AsyncClient
from .._config import TransferConfig, load_sse_c_key
from .._errors import ConfigError, S3PullError
from .._events import Subscriber
from .._results import DOWNLOADED, FAILED, BatchResult, ObjectOutcome, counted
from .._source import S3Source, parse_prefix
from .._units import format_size
from ..scheduling import copy_stream
from ..sinks import atomic_file
from . import _fleet
from ._output import EXIT_FAILED, _info_json, _outcome_json, _planned_line, _print_info
from ._progress import (
    PLAIN_PROGRESS_SECONDS,
    _BatchBars,
    _JsonProgress,
    _PlainProgress,
    _RichProgress,
)

if TYPE_CHECKING:
    # Only for a type: the consumers (CSV, Parquet, ~5 ms) load when an
    # inventory is read, not for every command.
    from ..consumers import InventoryRecord


def _client(args: argparse.Namespace, subscribers: list[Subscriber]) -> AsyncClient:
    stats = getattr(args, "stats", None)
    if stats is not None:
        subscribers = [*subscribers, stats]
    batch = {"batch_concurrency": args.objects} if getattr(args, "objects", None) else {}
    if getattr(args, "processes", None) is not None:
        batch["processes"] = args.processes
    config = TransferConfig(
        **batch,
        part_size=getattr(args, "part_size", None),
        concurrency=getattr(args, "concurrency", None),
        memory_limit=getattr(args, "memory_limit", TransferConfig.memory_limit),
        max_bandwidth=getattr(args, "bwlimit", None),
        verify=not getattr(args, "no_verify", False),
        on_change=getattr(args, "on_change", "fail"),
        resume=not getattr(args, "no_resume", False),
        request_payer=args.request_payer,
        sse_c_key=load_sse_c_key(args.sse_c_key_file),
        metrics=getattr(args, "metrics_port", None) is not None,
    )
    return AsyncClient(
        config=config,
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        addressing_style=args.addressing_style,
        sign=not args.no_sign_request,
        subscribers=subscribers,
        executor=_fleet.executor(args),
    )


async def _from_file(name: str, base: S3Source | None) -> AsyncIterator[str | S3Source]:
    """The sources a ``--from-file`` file lists, read in blocks as the batch goes."""
    try:
        stream = sys.stdin if name == "-" else open(name, encoding="utf-8")  # noqa: ASYNC230, SIM115
    except OSError as exc:
        raise ConfigError(f"--from-file {name}: {exc.strerror}") from None
    try:
        while lines := await _read_lines(stream, name):
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


async def _read_lines(stream: IO[str], name: str) -> list[str]:
    """The next block of lines of a ``--from-file`` file, or ``[]`` at its end."""
    try:
        return await asyncio.to_thread(stream.readlines, 1 << 16)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--from-file {name}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"--from-file {name}: {exc.strerror}") from None


def _progress(args: argparse.Namespace, *, many: bool) -> Subscriber | None:
    """The progress subscriber ``--progress`` (and ``-q``, ``--dry-run``) ask for."""
    mode = args.progress
    if args.quiet or getattr(args, "dry_run", False):
        mode = "none"
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "plain"
    if mode == "bar":
        return _BatchBars() if many else _RichProgress()
    if mode == "json":
        return _JsonProgress(sys.stderr)
    if mode == "plain" and not many:
        return _PlainProgress()
    return None  # a batch's plain progress is the "so far" line _cp_many prints


def _print_error(error: BaseException) -> None:
    """Errors are printed whatever ``--quiet`` says: it silences progress only."""
    print(f"s3pull: failed: {error}", file=sys.stderr)


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
                ("--processes", args.processes),
                ("--celery", args.celery),
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
    progress = _progress(args, many=True)
    bars = progress if isinstance(progress, _BatchBars) else None
    plain = args.progress in ("auto", "plain") and bars is None and not args.quiet
    async with _client(args, [progress] if progress else []) as client:
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
        result = args.kept.batch = BatchResult()
        next_report = time.monotonic() + PLAIN_PROGRESS_SECONDS
        with bars if bars is not None else contextlib.nullcontext():
            async for outcome in counted(outcomes, result, fail_fast=args.fail_fast):
                if args.json:
                    print(_outcome_json(outcome), flush=False)
                if outcome.error is not None:
                    _print_error(outcome.error)
                elif args.dry_run and not args.quiet and not args.json:
                    print(_planned_line(outcome), flush=False)
                if bars is not None:
                    bars.counted(result)
                elif plain and not args.json and time.monotonic() >= next_report:
                    next_report = time.monotonic() + PLAIN_PROGRESS_SECONDS
                    print(f"s3pull: so far {result.summary()}", file=sys.stderr)
    if not args.quiet:
        dry = "dry run: " if args.dry_run else ""
        print(f"s3pull: {dry}{result.summary()}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED


async def _cp(args: argparse.Namespace) -> int:
    _check_many_options(args)
    many = args.recursive or args.from_file is not None
    if not many and args.source.startswith("s3://") and args.source.endswith("/"):
        # A prefix, or a directory marker (often a 0-byte key): either way not
        # the file the user meant, whether or not the key exists.
        raise ConfigError(
            f"{args.source} ends with '/': a prefix or a directory marker, not an object "
            "(to download everything under a prefix: cp --recursive)"
        )
    if args.destination == "-":  # stdout, as for aws s3 cp
        if many:
            raise ConfigError("DEST - (stdout) takes one object, not --recursive or --from-file")
        if args.json:
            raise ConfigError("--json: not with DEST - (stdout carries the object)")
    stats_path = None
    args.stats = None
    if args.stats_json is not None:
        from ._stats import Stats, check_stats_path  # only for --stats-json

        stats_path = check_stats_path(args.stats_json)
        args.stats = Stats()
    served = None
    if args.metrics_port is not None:
        from ..metrics import serve  # prometheus_client only when asked for

        served = serve(args.metrics_port, args.metrics_addr)
    try:
        if args.destination == "-":
            return await _cat(args)
        return await (_cp_many(args) if many else _cp_one(args))
    finally:
        if served is not None:
            served.close()
        if stats_path is not None:
            from ._stats import write_stats

            write_stats(stats_path, args.stats)


async def _cp_one(args: argparse.Namespace) -> int:
    progress = _progress(args, many=False)
    bars = progress if isinstance(progress, _RichProgress) else None
    subscribers: list[Subscriber] = [progress] if progress else []
    try:
        async with _client(args, subscribers) as client:
            with bars if bars is not None else contextlib.nullcontext():
                result = await client.download_file(
                    args.source, args.destination, version_id=args.version_id
                )
    except S3PullError as exc:
        if args.json:  # the same line a batch prints for a failed object
            source = exc.source or "?"
            print(_outcome_json(ObjectOutcome(source, None, FAILED, error=exc)), flush=True)
        raise
    if args.json:
        print(_outcome_json(ObjectOutcome(result.source, result.path, DOWNLOADED, result=result)))
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
    """``cat SRC``, and ``cp SRC -`` (which has no ``--window``)."""
    out = sys.stdout.buffer
    async with (
        _client(args, []) as client,
        client.open(
            args.source,
            version_id=args.version_id,
            window=getattr(args, "window", None),
            part_size=args.part_size,
        ) as stream,
    ):
        await copy_stream(stream, out.write)
        await asyncio.to_thread(out.flush)
    return 0


async def _inventory(args: argparse.Namespace) -> int:
    for name, used in (("--dry-run", args.dry_run), ("--processes", args.processes)):
        if used and args.download is None:
            raise ConfigError(f"{name}: only with --download")
    kept = args.kept
    kept.records = 0
    with contextlib.ExitStack() as files:
        write: Callable[[str], object] | None = None
        if args.to_jsonl == "-":
            write = sys.stdout.write
        elif args.to_jsonl:
            # Through the sink downloads use: the file appears only once complete.
            jsonl = files.enter_context(atomic_file(Path(args.to_jsonl)))
            kept.jsonl = args.to_jsonl

            def write(text: str) -> None:
                jsonl.append(text.encode())

        count, total, batch = await _read_inventory(args, write)
    kept.jsonl = None
    if args.json and args.download is None:
        print(json.dumps({"count": count, "size": total}))
    elif not args.json:
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


async def _read_inventory(
    args: argparse.Namespace, write: Callable[[str], object] | None
) -> tuple[int, int, BatchResult]:
    """Read the inventory (writing its records as JSON lines with ``write``,
    downloading them with ``--download``): the count, the total size, the batch."""
    count = total = 0
    batch = BatchResult()
    if args.download is not None:
        args.kept.batch = batch
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
                    if write is not None:
                        lines = "".join(json.dumps(r.to_json()) + "\n" for r in chunk)
                        await asyncio.to_thread(write, lines)
                    count += len(chunk)
                    total += sum(record.size or 0 for record in chunk)
                    args.kept.records = count
                    for record in chunk:
                        yield record

        if args.download is None:
            async for _ in records():
                pass
        else:
            outcomes = client.iter_download_many(
                records(), args.download, skip_existing=args.skip_existing, dry_run=args.dry_run
            )
            async for outcome in counted(outcomes, batch, fail_fast=False):
                if args.json:
                    print(_outcome_json(outcome), flush=False)
                if outcome.error is not None:
                    _print_error(outcome.error)
    return count, total, batch


async def _stat(args: argparse.Namespace) -> int:
    async with _client(args, []) as client:
        info = await client.stat(args.source, version_id=args.version_id)
    if args.json:
        print(_info_json(info))
    else:
        _print_info(info)
    return 0


async def _clean(args: argparse.Namespace) -> int:
    # A file that cannot be removed is logged by clean(): "s3pull: cannot remove ...".
    removed = 0
    for directory in args.directories:
        for path in clean(directory, older_than=args.older_than, dry_run=args.dry_run):
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
    "worker": _fleet.worker,
    "breakers": _fleet.breakers,
}
