"""s3pull: fast, memory-bounded, atomic downloads from S3 and HTTP(S).

Example:
    >>> import s3pull
    >>> with s3pull.Client() as client:  # doctest: +SKIP
    ...     client.download_file("s3://bucket/key.bin", "/data/")
"""

from ._client import AsyncClient
from ._config import BreakerConfig, RetryConfig, Timeouts, TransferConfig
from ._errors import (
    AccessDeniedError,
    CircuitOpenError,
    ConfigError,
    CredentialsError,
    DiskFullError,
    EndpointUnavailableError,
    IntegrityError,
    InvalidSourceError,
    LocalError,
    NetworkError,
    NotFoundError,
    ObjectChangedError,
    ProtocolError,
    S3PullError,
    ServerError,
    ThrottledError,
    TimeoutError,
    TransferError,
    TransientError,
    UnsafePathError,
)
from ._events import LoggingSubscriber, Subscriber
from ._results import BatchResult, DownloadResult, ObjectInfo, ObjectOutcome
from ._source import HttpSource, S3Source, parse_source
from ._sync import Client, ObjectReader
from ._units import format_size, parse_size
from .consumers import (
    Inventory,
    InventoryRecord,
    iter_csv,
    iter_lines,
    iter_parquet_batches,
)
from .scheduling._stream import ObjectStream

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AsyncClient",
    "BatchResult",
    "BreakerConfig",
    "CircuitOpenError",
    "Client",
    "ConfigError",
    "CredentialsError",
    "DiskFullError",
    "DownloadResult",
    "EndpointUnavailableError",
    "HttpSource",
    "IntegrityError",
    "InvalidSourceError",
    "Inventory",
    "InventoryRecord",
    "LocalError",
    "LoggingSubscriber",
    "NetworkError",
    "NotFoundError",
    "ObjectChangedError",
    "ObjectInfo",
    "ObjectOutcome",
    "ObjectReader",
    "ObjectStream",
    "ProtocolError",
    "RetryConfig",
    "S3PullError",
    "S3Source",
    "ServerError",
    "Subscriber",
    "ThrottledError",
    "TimeoutError",
    "Timeouts",
    "TransferConfig",
    "TransferError",
    "TransientError",
    "UnsafePathError",
    "__version__",
    "format_size",
    "iter_csv",
    "iter_lines",
    "iter_parquet_batches",
    "parse_size",
    "parse_source",
]
