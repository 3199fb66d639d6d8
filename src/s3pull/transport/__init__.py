"""Transport: the one HTTP seam.

HEAD, ranged GET and ListObjectsV2, SigV4 signing, proxies, and the
translation of each backend's failures into s3pull errors, beside that
backend. Callers say what they need (the bytes of a range delivered into a
sink at an offset, or an in-order stream); which HTTP stack serves it
(``http.client`` on worker threads, or the event loop's own HTTP/1.1
over asyncio's transports) is chosen
here, and no caller branches on which one it got.

May import: the sinks (what bytes are delivered into) and the shared
modules; never planning, scheduling, consumers or the clients.

Imported by: scheduling, the clients (to build a :class:`Transport`) and
the CLI (:data:`ADDRESSING_STYLES`), through this module (import-linter
checks both, see ``[tool.importlinter]`` in pyproject.toml).
"""

from ._backend import Response
from ._listing import ListCursor, ListedObject, ListPage
from ._response import ResponseHead, quoted_etag
from ._s3 import ADDRESSING_STYLES, S3Endpoint
from ._transport import CHECKSUM_ALGORITHMS, THREADED_BODY_ABOVE, Transport, object_info

__all__ = [
    "ADDRESSING_STYLES",
    "CHECKSUM_ALGORITHMS",
    "THREADED_BODY_ABOVE",
    "ListCursor",
    "ListPage",
    "ListedObject",
    "Response",
    "ResponseHead",
    "S3Endpoint",
    "Transport",
    "object_info",
    "quoted_etag",
]
