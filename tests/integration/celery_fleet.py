"""A real Celery fleet for the tests: Debian's redis-server on a free loopback
port (no persistence) and ``celery worker`` subprocesses (prefork), each
started by the test that needs them and stopped after."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..support import free_port

#: How long a worker gets to say it is ready, or to stop.
START_SECONDS = 60
STOP_SECONDS = 30


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """redis-server on a free port, its (unused) files in ``directory``."""
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(executable):
        pytest.skip("redis-server is not installed: `make test` installs it (Debian's package)")
    port = free_port()
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(directory), "--protected-mode", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", process)
    try:
        client = server.client()
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)  # nothing to await: the process only opens a port
        client.close()
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    queues: Sequence[str] = field(default_factory=tuple)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """The pids of the worker's pool children."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # a warm shutdown
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def workers(
    broker: str,
    directory: Path,
    *,
    count: int = 1,
    concurrency: int = 2,
    queues: Sequence[str] = ("s3pull", "s3pull.large"),
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
    cli: bool = False,
    app: str = "s3pull.celery",
) -> Iterator[list[Worker]]:
    """``count`` real ``celery worker`` processes (prefork) on ``broker``,
    consuming ``queues`` (started by ``s3pull worker`` if ``cli``, with
    ``extra`` as its options), of the Celery app ``app`` (a module on the
    workers' ``PYTHONPATH``); stopped when the block ends."""
    from s3pull.celery import make_app

    directory.mkdir(parents=True, exist_ok=True)
    started: list[Worker] = []
    # A task's lock outlives a killed child by this long: short, for tests that kill.
    settings = {"S3PULL_CELERY_BROKER": broker, "S3PULL_LOCK_SECONDS": "2"}
    environment = {**os.environ, **settings, **(env or {})}
    try:
        for number in range(count):
            name = f"w{number}-{os.getpid()}-{time.monotonic_ns()}@localhost"
            log = directory / f"worker-{number}.log"
            if cli:
                argv = [sys.executable, "-m", "s3pull", "worker", "--broker", broker]
                argv += ["--concurrency", str(concurrency), "-n", name, "-Q", ",".join(queues)]
                argv += extra
            else:
                argv = [sys.executable, "-m", "celery", "-A", app, "worker"]
                argv += ["--pool", "prefork", "--concurrency", str(concurrency), "-n", name]
                argv += ["-Q", ",".join(queues), "--without-gossip", "--without-mingle"]
                argv += ["--without-heartbeat", "--loglevel", "INFO", *extra]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    argv, stdout=output, stderr=subprocess.STDOUT, env=environment
                )
            started.append(Worker(name, process, log, queues))
        with closing(make_app(broker)) as app:
            deadline = time.monotonic() + START_SECONDS
            waiting = {worker.name for worker in started}
            while waiting:
                for worker in started:
                    if worker.process.poll() is not None:
                        raise RuntimeError(f"worker {worker.name} exited:\n{worker.text()}")
                answers = app.control.ping(destination=list(waiting), timeout=0.5) or []
                for answer in answers:
                    waiting -= set(answer)
                if waiting and time.monotonic() > deadline:
                    raise RuntimeError("workers did not start:\n" + started[0].text())
        yield started
    finally:
        for worker in started:
            worker.stop()
