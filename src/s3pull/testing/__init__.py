"""Test helpers: a fault-injecting, S3-compatible HTTP server.

Use it to test code that downloads from S3 against the failures real stores
and networks produce: throttling, resets, stalls, truncated or corrupt
bodies, objects that change mid-download, broken listings.

Example:
    >>> from s3pull.testing import Fault, FaultServer
    >>> with FaultServer() as s3:  # doctest: +SKIP
    ...     s3.put_object("bucket", "key", b"hello")
    ...     s3.add_fault("bucket", "key", Fault.status(503, times=1))
    ...     s3.endpoint_url
    'http://127.0.0.1:40123'

As a subprocess: ``python -m s3pull.testing --root DIR [--script faults.json]
[--log requests.jsonl]`` (see ``python -m s3pull.testing --help``).

Also: :func:`kill_when_journaled` crashes a download once its journal shows
progress (to test crash resume), :func:`write_pdf` writes a PDF of any size
page by page (each page showing :func:`page_text`), and :func:`run_cli_measured`
runs the ``s3pull`` command in a child process and measures that child's own
peak RSS.

The layer above the library: the library never imports it (an import-linter
contract in pyproject.toml says so), only :mod:`s3pull.demo` and tests do,
through this module. It may import the sinks (to read a journal) and the
shared modules; the server itself imports nothing of the library, so it
tests any S3 client, not just s3pull.
"""

from __future__ import annotations

from ._crash import journaled_parts, kill_when_journaled
from ._faults import Fault, FaultKind, FaultRule, parse_script
from ._pdf import page_text, write_pdf
from ._record import RequestRecord
from ._rss import run_cli_measured, run_cli_peaks
from ._server import FaultServer
from ._store import StoredObject, generate_bytes

__all__ = [
    "Fault",
    "FaultKind",
    "FaultRule",
    "FaultServer",
    "RequestRecord",
    "StoredObject",
    "generate_bytes",
    "journaled_parts",
    "kill_when_journaled",
    "page_text",
    "parse_script",
    "run_cli_measured",
    "run_cli_peaks",
    "write_pdf",
]
