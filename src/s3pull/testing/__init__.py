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
"""

from __future__ import annotations

from ._crash import journaled_parts, kill_when_journaled
from ._faults import Fault, FaultKind, FaultRule, parse_script
from ._record import RequestRecord
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
    "parse_script",
]
