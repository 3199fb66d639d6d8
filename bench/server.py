"""The local S3-compatible endpoint: nginx + a little Lua (``s3emu.lua``).

nginx serves objects straight from the page cache with sendfile, so even
ranged GETs at several GB/s cost it little CPU: the server is never the
bottleneck of a client on loopback. One nginx master serves two profiles,
each on its own port:

* ``raw``: loopback, nothing added.
* ``wan``: an S3 seen from a cloud VM: every request waits ``WAN_DELAY`` in the
  access phase before any byte of the response (first-byte latency), and each
  response body is paced to ``WAN_RATE`` by ``limit_rate`` (per connection
  bandwidth). ``tc netem`` would be the faithful tool but is not available in
  every kernel; see bench/README.md for what this emulation leaves out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.data import BUCKET, DataSet

WAN_DELAY = 0.030  # seconds before the first byte of every response
WAN_RATE = "80m"  # nginx limit_rate: 80 MiB/s (83.9 MB/s) per response
WAN_RATE_LABEL = "80 MiB/s"
_LUA_DIR = Path(__file__).resolve().parent
_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")


@dataclass(frozen=True)
class Endpoints:
    raw: str
    wan: str

    def url(self, profile: str) -> str:
        return getattr(self, profile)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_block(port: int, data_root: Path, delay: float, rate: str | None) -> str:
    pacing = f"limit_rate {rate};" if rate else ""
    return f"""
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {data_root};
        location / {{
            {pacing}
            access_by_lua_block {{ s3emu.access({delay}) }}
            header_filter_by_lua_block {{ s3emu.header_filter() }}
        }}
    }}"""


def _config(run_dir: Path, data: DataSet, raw_port: int, wan_port: int) -> str:
    modules = "\n".join(f"load_module {Path('/usr/lib/nginx/modules') / m};" for m in _MODULES)
    # Workers run as root when we are root: the data lives in the work tree,
    # which need not be readable by the usual unprivileged nginx user.
    user = "user root;" if os.geteuid() == 0 else ""
    temp = run_dir / "tmp"
    return f"""{modules}
{user}
worker_processes 2;
daemon off;
master_process on;
pid {run_dir / "nginx.pid"};
error_log {run_dir / "error.log"} warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    etag off;                      # the Lua header filter sets the S3 ETag (MD5)
    types {{ }}
    default_type application/octet-stream;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    lua_package_path "{_LUA_DIR}/?.lua;;";
    init_by_lua_block {{
        s3emu = require "s3emu"
        s3emu.load("{data.manifest_tsv}", "{BUCKET}")
    }}
    {_server_block(raw_port, data.root, 0, None)}
    {_server_block(wan_port, data.root, WAN_DELAY, WAN_RATE)}
}}
"""


def _wait_ready(url: str, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/{BUCKET}?list-type=2&max-keys=1", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def running(work: Path, data: DataSet):
    """Start nginx for both profiles; always stop it (its whole process group)."""
    run_dir = (work / "nginx").resolve()
    (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
    raw_port, wan_port = _free_port(), _free_port()
    while wan_port == raw_port:
        wan_port = _free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(_config(run_dir, data, raw_port, wan_port))
    log = open(run_dir / "stderr.log", "wb")  # noqa: SIM115 - closed in finally
    # A new session makes nginx and its workers one process group we can kill
    # as a whole, whatever happens to this process.
    proc = subprocess.Popen(
        ["nginx", "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        endpoints = Endpoints(f"http://127.0.0.1:{raw_port}", f"http://127.0.0.1:{wan_port}")
        deadline = time.monotonic() + 15
        _wait_ready(endpoints.raw, proc, deadline)
        _wait_ready(endpoints.wan, proc, deadline)
        yield endpoints
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # fast shutdown of master and workers
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Workers can outlive the master by a moment; make sure the group is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
