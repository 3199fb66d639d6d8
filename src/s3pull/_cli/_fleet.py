"""The command line's Celery side: ``--celery URL``, ``worker`` and ``breakers``.

``cp -r``/``--from-file`` and ``inventory --download`` with ``--celery URL``
plan the batch here and run its shards on the workers of that Redis broker
(``s3pull.celery.CeleryExecutor``): progress, ``--json`` lines, summary and
exit code are those of a local run. ``s3pull worker`` starts a worker with
s3pull's preset (``celery worker``, exec'd); ``s3pull breakers`` lists and
resets the object breakers the fleet shares.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

from .._errors import ConfigError


def add_celery_option(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--celery",
        metavar="URL",
        help="run the batch on the Celery workers of this Redis broker "
        "(redis://HOST:PORT/DB); DEST must be a path the workers see",
    )


def add_commands(commands: Any) -> None:
    """The ``worker`` and ``breakers`` commands."""
    worker = commands.add_parser(
        "worker",
        help="run a Celery worker for s3pull's tasks (s3pull[celery])",
        description="Start `celery worker` (prefork) with s3pull's preset: late "
        "acknowledgement, one message per child, each child's memory budget from "
        "S3PULL_MEMORY_LIMIT (the worker's limit, shared by its children), and a dead "
        "letter for a task whose worker died S3PULL_MAX_DELIVERIES times (3).",
    )
    worker.add_argument("--broker", metavar="URL", required=True, help="redis://HOST:PORT/DB")
    worker.add_argument(
        "-Q", "--queues", default="s3pull,s3pull.large", help="default: s3pull,s3pull.large"
    )
    worker.add_argument("--concurrency", type=int, help="child processes (default: cores)")
    worker.add_argument("-n", "--hostname", help="the worker's name (default: celery@HOST)")
    worker.add_argument(
        "--soft-time-limit",
        type=float,
        metavar="SECONDS",
        help="cancel a shard still running after this long (its objects left fail)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the children's Prometheus metrics on http://127.0.0.1:PORT/metrics "
        "(s3pull[metrics]; PROMETHEUS_MULTIPROC_DIR, default a directory under /tmp for "
        "this port, is emptied at start)",
    )
    worker.add_argument("--loglevel", default="INFO", help="default: INFO")
    worker.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    breakers = commands.add_parser(
        "breakers",
        help="list or reset the circuit breakers a Celery fleet shares",
        description="List the objects whose breaker the workers on this Redis have counted "
        "failures for (one line each: state, failures, seconds until a probe, last error), "
        "or reset them.",
    )
    breakers.add_argument("--redis", metavar="URL", required=True, help="redis://HOST:PORT/DB")
    which = breakers.add_mutually_exclusive_group()
    which.add_argument("--reset", metavar="KEY", help="reset one object (its s3:// URL)")
    which.add_argument("--all", action="store_true", help="reset every breaker")
    breakers.add_argument("--json", action="store_true", help="one JSON object per breaker")
    breakers.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def executor(args: argparse.Namespace) -> Any:
    """The ``CeleryExecutor`` of ``--celery``, or None."""
    url = getattr(args, "celery", None)
    if url is None:
        return None
    if getattr(args, "processes", None) is not None:
        raise ConfigError("--processes and --celery: the workers decide their own processes")
    try:
        from ..celery import CeleryExecutor, make_app
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(f"--celery needs s3pull[celery] ({exc})") from None
    return CeleryExecutor(make_app(url))


async def worker(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "celery", "-A", "s3pull.celery", "worker", "--pool", "prefork"]
    argv += ["-Q", args.queues, "--loglevel", args.loglevel]
    if args.concurrency is not None:
        argv += ["--concurrency", str(args.concurrency)]
    if args.hostname is not None:
        argv += ["--hostname", args.hostname]
    if args.soft_time_limit is not None:
        argv += ["--soft-time-limit", str(args.soft_time_limit)]
    env = {**os.environ, "S3PULL_CELERY_BROKER": args.broker}
    if args.metrics_port is not None:
        # Set before the worker starts, as prometheus_client's multiprocess
        # mode requires; the worker empties it at start (s3pull.celery).
        directory = env.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
            tempfile.gettempdir(), f"s3pull-metrics-{os.getuid()}-{args.metrics_port}"
        )
        os.makedirs(directory, mode=0o700, exist_ok=True)
        env.update(PROMETHEUS_MULTIPROC_DIR=directory, S3PULL_METRICS_PORT=str(args.metrics_port))
    os.execve(sys.executable, argv, env)  # Celery handles its own signals from here


async def breakers(args: argparse.Namespace) -> int:
    from ..celery import fleet_breakers

    store = fleet_breakers(args.redis)
    try:
        if args.all or args.reset is not None:
            store.reset(None if args.all else args.reset)
            print(f"s3pull: reset {'every breaker' if args.all else args.reset}", file=sys.stderr)
            return 0
        for key in store.tracked():
            state, failures, last, wait = store.state(key)
            if args.json:
                fields = {"key": key, "state": state, "failures": failures}
                print(json.dumps({**fields, "retry_in": wait, "last_failure": last}))
            else:
                when = f" probe in {wait:.0f} s" if wait else ""
                print(f"{state}\t{failures}\t{key}{when}\t{last or ''}")
    finally:
        store.redis.close()
    return 0
