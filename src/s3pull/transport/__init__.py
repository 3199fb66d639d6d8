"""Transport: HEAD / ranged GET / ListObjectsV2, SigV4 signing, error translation."""

from ._backend import Response
from ._blocking import BlockingResponse
from ._listing import ListCursor, ListedObject, ListPage
from ._response import ResponseHead, quoted_etag
from ._s3 import ADDRESSING_STYLES, S3Endpoint
from ._transport import CHECKSUM_ALGORITHMS, THREADED_BODY_ABOVE, Transport, object_info

# aiohttp's response lives in ``_aio``, imported when first needed: see there.

__all__ = [
    "ADDRESSING_STYLES",
    "CHECKSUM_ALGORITHMS",
    "THREADED_BODY_ABOVE",
    "BlockingResponse",
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
