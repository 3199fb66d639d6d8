"""The ``s3pull`` command line: ``cp``, ``cat``, ``inventory``, ``stat``, ``clean``, ``pdf``...

Exit codes: 0 success, 1 a download or stat failed (for many objects: at
least one failed, the others were still downloaded), 2 bad usage or a bad
option value, 129 hung up (SIGHUP: the terminal or ssh session closed),
130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM). Every failure is
one line on stderr. A signal cancels the command, which removes its temp
files and journals first, then says what was kept.
"""

from __future__ import annotations

# Only what is cheap to load is imported up here: everything else is loaded
# inside main's handling of Ctrl-C, so a Ctrl-C at start-up ends in one line.
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .._results import BatchResult

EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

__all__ = ["main", "run"]

#: The signals that stop a command cleanly, with their exit codes and words.
_SIGNALS = {
    signal.SIGINT: (EXIT_INTERRUPTED, "interrupted"),
    signal.SIGTERM: (EXIT_TERMINATED, "terminated"),
    signal.SIGHUP: (EXIT_HANGUP, "hung up"),
}


@dataclass
class Kept:
    """What a command has finished so far, for the line a signal makes it print."""

    #: The batch counted so far (``cp`` of many objects, ``inventory --download``).
    batch: BatchResult | None = None
    #: Inventory records read so far, and the file they were going to.
    records: int | None = None
    jsonl: str | None = None

    def describe(self) -> str:
        """e.g. ``" after 351 objects (351 downloaded, 1.2 GiB, kept)"``."""
        from .._units import format_size

        parts = []
        if self.records is not None:
            parts.append(f"{self.records} records read")
            if self.jsonl is not None:
                parts.append(f"{self.jsonl} not written")
        batch = self.batch
        if batch is not None:
            done = f"{batch.downloaded} downloaded ({format_size(batch.bytes)}, kept)"
            if batch.failed:
                done += f", {batch.failed} failed"
            parts.append(f"{batch.objects} objects done: {done}")
        return f" after {'; '.join(parts)}" if parts else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    kept = Kept()
    try:
        return _main(argv, kept)
    except KeyboardInterrupt:
        # Ctrl-C before the command's own handler is in place (while the
        # modules load) or after it is gone.
        return _stopped(signal.SIGINT, kept)
    except _Stopped as stopped:
        return _stopped(stopped.signal, kept)


def _main(argv: Sequence[str] | None, kept: Kept) -> int:
    # Imported here, not above: loading them is most of the start-up time,
    # and a Ctrl-C meanwhile must end as one line too.
    import asyncio
    import logging

    from .._errors import ConfigError, InvalidSourceError, S3PullError, UnsafePathError
    from ._commands import _COMMANDS
    from ._output import EXIT_FAILED, EXIT_USAGE
    from ._parser import _parser

    args = _parser().parse_args(argv)
    args.kept = kept
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="s3pull: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    command = getattr(args, "handler", None) or _COMMANDS[args.command]
    try:
        return asyncio.run(_stoppable(command(args)))
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


def _stopped(signum: int, kept: Kept) -> int:
    code, word = _SIGNALS[signal.Signals(signum)]
    print(f"s3pull: {word}{kept.describe()}; no partial files left", file=sys.stderr)
    return code


class _Stopped(Exception):
    """A signal arrived: the command was cancelled and has cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signal = signum


async def _stoppable(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command``; on SIGINT, SIGTERM (``kill``, a container stopping) or
    SIGHUP (a closed terminal) cancel it, so that temp files and journals are
    removed before the process exits."""
    import asyncio

    task = asyncio.ensure_future(command)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise _Stopped(received[0]) from None
        raise
    finally:
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)


def run() -> NoReturn:
    """The ``s3pull`` command: :func:`main`, then an immediate exit.

    By the time ``main`` returns every file is fsynced and renamed and the
    event loop's threads are joined; what is left is the interpreter freeing
    every module, which added 0.1-0.3 s to each run (1 GiB on loopback: 2.23
    -> 1.94 s, median of 5 interleaved pairs). Output is flushed first.
    """
    code = main()
    import logging  # loaded by main already, unless a Ctrl-C came first

    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (``| head``); main already said all it had to
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
