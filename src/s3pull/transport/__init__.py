"""Transport: HEAD / ranged GET, SigV4 signing, error translation."""

from ._s3 import ADDRESSING_STYLES, S3Endpoint
from ._transport import CHECKSUM_ALGORITHMS, Response, Transport, object_info

__all__ = [
    "ADDRESSING_STYLES",
    "CHECKSUM_ALGORITHMS",
    "Response",
    "S3Endpoint",
    "Transport",
    "object_info",
]
