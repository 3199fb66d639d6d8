"""The command line's parser: every command, option and its validation."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from .._config import SSE_C_KEY_ENV, TransferConfig
from .._errors import ConfigError
from .._units import parse_duration, parse_rate, parse_size
from .._version import __version__
from ..transport import ADDRESSING_STYLES
from ._fleet import add_celery_option, add_commands
from ._output import EXIT_USAGE
from ._pdf import add_commands as add_pdf_commands
from ._progress import PLAIN_PROGRESS_SECONDS, PROGRESS_MODES


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _rate(text: str) -> int:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


#: The smallest ``--part-size``: one read chunk; smaller parts only multiply requests.
MIN_PART_SIZE = 64 << 10


def _part_size(text: str) -> int:
    size = _size(text)
    if size < MIN_PART_SIZE:
        raise argparse.ArgumentTypeError(f"must be at least 64KiB, got {text!r}")
    return size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    port = _positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return port


def _processes(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _add_processes_option(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--processes",
        type=_processes,
        metavar="N|auto",
        help="worker processes to spread the objects over, each with an equal share of "
        "--memory-limit (default: auto: this process, joined by one worker per other "
        "core when the first 1000 listed objects average 1 MiB or less)",
    )
    add_celery_option(group)


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
    group.add_argument(
        "--bwlimit",
        type=_rate,
        metavar="RATE",
        help="the most bytes/s for all downloads together, e.g. 50MiB/s (default: 0, unlimited)",
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
    s3.add_argument(
        "--request-payer",
        choices=["requester"],
        help="read a Requester Pays bucket, at your cost",
    )
    s3.add_argument(
        "--sse-c-key-file",
        metavar="PATH",
        help=f"the 32-byte key of SSE-C objects (default: {SSE_C_KEY_ENV}, base64)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # Each command takes only the options it uses: an option accepted and
    # ignored reads as a promise kept.
    one = _Parser(add_help=False)
    one.add_argument("--version-id", help="the S3 object version to use")
    quiet = _Parser(add_help=False)
    quiet.add_argument(
        "-q", "--quiet", action="store_true", help="no progress, no summary; errors still shown"
    )
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="one JSON result per object on stdout")

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
        parents=[common, one, quiet, as_json],
        help="download an object to a file or directory",
        description="Download SRC (s3://bucket/key or an http(s) URL) to DEST. DEST may be "
        "a directory. The file appears only once complete and verified.",
    )
    cp.add_argument("source", metavar="SRC", nargs="?")
    cp.add_argument("destination", metavar="DEST")
    cp.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="on stderr: bars, plain lines, JSON lines (bytes, total, rate, ETA) every "
        f"{PLAIN_PROGRESS_SECONDS:.0f} s, or none (default: auto, bars on a terminal, "
        "plain lines otherwise)",
    )
    watch = cp.add_argument_group("observability")
    watch.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics while the copy runs "
        "(needs s3pull[metrics])",
    )
    watch.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="the address --metrics-port listens on (default: 127.0.0.1)",
    )
    watch.add_argument(
        "--stats-json",
        metavar="FILE",
        help="write the run's numbers to FILE as one JSON object: objects, failed, bytes, "
        "seconds, retries, peak_rss_bytes, temp_high_water_bytes",
    )
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
    _add_processes_option(many)
    tuning = cp.add_argument_group("transfer")
    tuning.add_argument(
        "--part-size",
        type=_part_size,
        help="bytes per ranged GET, e.g. 16MiB (at least 64KiB; grown to whole MiB where "
        "an object would need more than 10,000 parts)",
    )
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
        parents=[common, one, quiet],
        help="write an object to stdout, in order, fetched in parallel",
        description="Write SRC to stdout in order while it downloads: parallel ranged GETs "
        "fill a bounded window ahead of the output, so memory stays flat whatever the size.",
    )
    cat.add_argument("source", metavar="SRC")
    streaming = cat.add_argument_group("transfer")
    streaming.add_argument(
        "--window", type=_size, help="bytes held ahead of the output (default: 32MiB)"
    )
    streaming.add_argument(
        "--part-size", type=_part_size, help="bytes per ranged GET (default: 4MiB)"
    )
    _add_budget_options(streaming)

    inventory = commands.add_parser(
        "inventory",
        parents=[common, quiet, as_json],
        help="read an S3 Inventory report: count, sum sizes, or list as JSON lines",
        description="Read every data file (CSV.gz or Parquet) of the S3 Inventory whose "
        "manifest.json is MANIFEST, several at once, in bounded memory; each file's MD5 is "
        "checked against the manifest. Prints the count and/or total size asked for, one "
        "number per line (count first), or a JSON object {count, size} with --json; with "
        "--download and --json, one JSON result per object instead.",
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
    _add_processes_option(inventory.add_argument_group("with --download"))
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
        parents=[common, one, as_json],
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
    add_commands(commands)
    add_pdf_commands(commands, [common, quiet], _add_budget_options)
    return parser
