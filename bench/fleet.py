"""A Celery fleet for the ``s3pull-celery*`` clients: a private redis-server
and one ``s3pull worker`` (prefork, ``--concurrency N``) on it.

A scenario starts one fleet per Celery client before its warm-up and stops
it after its last run, so every counted run finds the worker's children
already forked and their imports done, as a user's fleet would be. What a
run measures is then the batch: ``s3pull cp --celery URL`` planning and
sending shards, the children downloading, the outcomes coming back. The
worker is not a descendant of the measured command, so ``measure.run`` is
given its pid: its tree's RSS is added to the client's samples, and its CPU
during the run to the client's. Redis is the broker, infrastructure like
nginx, and is not counted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: How long redis-server and the worker get to be ready, and to stop.
START_SECONDS = 60
STOP_SECONDS = 30


@dataclass(frozen=True)
class Fleet:
    broker: str  # redis://127.0.0.1:PORT/0
    worker_pid: int  # the root of the worker's process tree


def available() -> str | None:
    """None if a fleet can be started here, else why not."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (make redis-server)"
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return "s3pull[celery] is not installed in the benchmark's venv"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        # Its own group: the prefork children go with the parent.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_redis(url: str, process: subprocess.Popen[bytes]) -> None:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)  # it only has to open its port
    finally:
        client.close()


def _wait_for_worker(broker: str, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
    from s3pull.celery import make_app

    app = make_app(broker)
    deadline = time.monotonic() + START_SECONDS
    try:
        while not app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the Celery worker did not start:\n{tail}")
    finally:
        app.close()


@contextlib.contextmanager
def running(s3pull: Path, concurrency: int, env: dict[str, str], logs: Path) -> Iterator[Fleet]:
    """redis-server on a free port and ``s3pull worker --concurrency N`` on it."""
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_dir = logs / f"redis-{port}"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(redis_dir)]
    server = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_redis(broker, server)
        name = f"bench-c{concurrency}-{port}@localhost"
        log = logs / f"worker-c{concurrency}-{port}.log"
        command = [str(s3pull), "worker", "--broker", broker, "--concurrency", str(concurrency)]
        command += ["-n", name, "--loglevel", "WARNING"]
        with log.open("wb") as output:
            worker = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one group: sampled and stopped as one
            )
        _wait_for_worker(broker, name, worker, log)
        yield Fleet(broker, worker.pid)
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)
