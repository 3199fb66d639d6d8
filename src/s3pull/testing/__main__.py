"""Run a FaultServer as a process: ``python -m s3pull.testing --root DIR``.

Serves ``DIR/<bucket>/<key>`` files, applies the faults of ``--script``,
appends one JSON line per completed request to ``--log``, and prints
``endpoint_url=http://127.0.0.1:PORT`` as its first stdout line. It stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._server import FaultServer


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m s3pull.testing``; returns the exit status.

    Example:
        >>> main(["--root", "/tmp/data", "--port", "0"])  # doctest: +SKIP
        endpoint_url=http://127.0.0.1:40123
    """
    parser = argparse.ArgumentParser(
        prog="python -m s3pull.testing", description="Fault-injecting S3-compatible server"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port, 0 for a free one (0)")
    parser.add_argument("--root", help="serve DIR/<bucket>/<key> files")
    parser.add_argument("--bucket", action="append", default=[], help="create an empty bucket")
    parser.add_argument("--versioned", action="append", default=[], help="versioned bucket")
    parser.add_argument("--script", help="JSON fault script (see s3pull.testing.parse_script)")
    parser.add_argument("--log", help="append one JSON line per completed request")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = FaultServer(host=args.host, port=args.port, log_path=args.log)
    for name in args.versioned:
        server.create_bucket(name, versioned=True)
    for name in args.bucket:
        server.create_bucket(name)
    if args.root:
        server.serve_directory(args.root)
    if args.script:
        server.load_script(args.script)
    with server:
        print(f"endpoint_url={server.endpoint_url}", flush=True)
        while not stop.wait(0.5):
            pass
        errors = server.errors
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
