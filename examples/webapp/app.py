"""A live progress page for s3pull downloads, over Server-Sent Events.

``make webapp`` (or ``python examples/webapp/app.py``) starts the embedded
local S3 server of the demo (``s3pull.testing.FaultServer``) with a few
generated objects under ``s3://demo/photos/`` (paced, so that the bars are
seen moving, and one that always fails), and serves this app on
http://127.0.0.1:8000/. Enter an ``s3://`` prefix, object URL or ``http(s)``
URL, press Download: the server downloads it into a temporary directory
and the page follows each object's bar, rate and final status through
``EventSource``, then shows the batch's summary.

The routes:

- ``POST /api/downloads`` ``{"source": "s3://demo/photos/"}`` starts a
  download and answers ``{"id": ...}``; a bad source is a 400 with its reason.
- ``GET /api/downloads/{id}/events``: the download's SSE stream
  (``s3pull.sse``); a reconnecting browser resumes with ``Last-Event-ID``.
  Closing the page does not stop the download.
- ``GET /metrics``: the app's Prometheus metrics (``s3pull.metrics``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from prometheus_client import CollectorRegistry, make_asgi_app
from pydantic import BaseModel

from s3pull import AsyncClient, S3PullError
from s3pull.sse import EventStream, starlette_response

PAGE = Path(__file__).with_name("index.html")
MiB = 1024 * 1024


class DownloadRequest(BaseModel):
    source: str


@dataclass
class Job:
    """One download started from the page, and the stream its browsers follow."""

    stream: EventStream
    task: asyncio.Task[None] | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def create_app(endpoint_url: str, downloads: Path, *, sign: bool = False) -> FastAPI:
    """The app: downloads from ``endpoint_url`` land under ``downloads``/<job id>/."""
    app = FastAPI(title="s3pull live downloads")
    registry = CollectorRegistry()
    app.mount("/metrics", make_asgi_app(registry))
    jobs: dict[str, Job] = {}
    numbers = itertools.count(1)
    page = PAGE.read_text()

    async def run(job: Job, source: str, destination: Path) -> None:
        started = time.monotonic()
        downloaded = failed = size = 0
        client = AsyncClient(
            endpoint_url=endpoint_url, sign=sign, subscribers=[job.stream], metrics=registry
        )
        try:
            async with client:
                if source.startswith("s3://") and source.endswith("/"):
                    async for outcome in client.iter_download_prefix(source, destination):
                        if outcome.error is not None:
                            failed += 1
                        elif outcome.result is not None:
                            downloaded += 1
                            size += outcome.result.bytes
                else:
                    try:
                        result = await client.download_file(source, f"{destination}/")
                    except S3PullError as exc:
                        failed = 1  # also when no download started (a malformed URL)
                        job.summary["error"] = str(exc)
                    else:
                        downloaded, size = 1, result.bytes
        except S3PullError as exc:  # the listing itself failed
            job.summary["error"] = str(exc)
        job.summary.update(
            downloaded=downloaded,
            failed=failed,
            bytes=size,
            seconds=round(time.monotonic() - started, 2),
        )
        job.stream.close(job.summary)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.post("/api/downloads")
    async def start(body: DownloadRequest) -> dict[str, str]:
        source = body.source.strip()
        if not source.startswith(("s3://", "http://", "https://")) or source in ("s3://",):
            raise HTTPException(400, "enter an s3://bucket/prefix/, s3://bucket/key or http(s) URL")
        job_id = str(next(numbers))
        destination = downloads / job_id
        destination.mkdir(parents=True, exist_ok=True)
        job = jobs[job_id] = Job(EventStream())
        # The download belongs to the app, not to a browser: it runs to the
        # end even if every page that follows it is closed.
        job.task = asyncio.create_task(run(job, source, destination))
        return {"id": job_id}

    @app.get("/api/downloads/{job_id}/events")
    async def events(job_id: str, request: Request) -> Any:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no download {job_id}")
        return starlette_response(job.stream, request)

    app.state.jobs = jobs
    return app


def stock(server: Any, *, pace: float = 0.2) -> dict[str, int]:
    """Put the demo's objects under ``s3://demo/photos/``: six of 2-7 MiB,
    sent 256 KiB every ``pace`` s (a slow link), and last one that always
    fails. Returns their sizes by key."""
    from s3pull.testing import Fault

    sizes = {f"photos/image-{n}.jpg": n * MiB + 1 for n in range(2, 8)}
    sizes["photos/broken.jpg"] = 1 * MiB
    for key, size in sizes.items():
        server.put_generated("demo", key, size)
        if key.endswith("broken.jpg"):
            server.add_fault("demo", key, Fault.status(500), method="GET")
        else:
            server.add_fault("demo", key, Fault.drip(chunk=256 * 1024, interval=pace), method="GET")
    return sizes


def main() -> None:
    import uvicorn

    from s3pull.testing import FaultServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # uvicorn shuts down on SIGTERM, then raises it again with the handler it
    # found: the default one would end the process before the downloads'
    # temp directory and the S3 server are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with FaultServer() as server, tempfile.TemporaryDirectory(prefix="s3pull-web-") as tmp:
        stock(server)
        print(f"s3pull live page: http://127.0.0.1:{args.port}/ (objects: s3://demo/photos/)")
        uvicorn.run(create_app(server.endpoint_url, Path(tmp)), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
