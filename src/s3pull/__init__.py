"""s3pull: fast, memory-bounded, atomic downloads from S3 and HTTP(S).

Example:
    >>> import s3pull
    >>> with s3pull.Client() as client:  # doctest: +SKIP
    ...     client.download_file("s3://bucket/key.bin", "/data/")

The names below load on first use (PEP 562): ``import s3pull`` costs almost
nothing, so the command line can put its Ctrl-C handling in place before the
modules that take most of its start-up time are read, and a program that uses
one name does not pay for the others.
"""

# Every module-level name is public unless it starts with "_" (a test checks
# that the public ones are exactly __all__).
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._clean import clean
    from ._client import AsyncClient
    from ._config import BreakerConfig, RetryConfig, Timeouts, TransferConfig
    from ._errors import (
        AccessDeniedError,
        CircuitOpenError,
        ConfigError,
        CorruptDocumentError,
        CredentialsError,
        DeadLetterError,
        DiskFullError,
        DocumentError,
        EmptyDocumentError,
        EncryptedDocumentError,
        EndpointUnavailableError,
        IntegrityError,
        InvalidSourceError,
        LocalError,
        NetworkError,
        NotFoundError,
        ObjectChangedError,
        PageRangeError,
        ProtocolError,
        S3PullError,
        ServerError,
        ThrottledError,
        TimeoutError,
        TooLargeError,
        TransferError,
        TransientError,
        UnsafePathError,
    )
    from ._events import LoggingSubscriber, Subscriber
    from ._results import BatchResult, DownloadResult, ObjectInfo, ObjectOutcome
    from ._source import HttpSource, S3Source, parse_source
    from ._sync import Client
    from ._units import format_size, parse_size
    from .consumers import (
        InventoryRecord,
        iter_csv,
        iter_lines,
        iter_parquet_batches,
    )
    from .scheduling import Inventory, ObjectReader, ObjectStream

from ._version import __version__

__all__ = [
    "AccessDeniedError",
    "AsyncClient",
    "BatchResult",
    "BreakerConfig",
    "CircuitOpenError",
    "Client",
    "ConfigError",
    "CorruptDocumentError",
    "CredentialsError",
    "DeadLetterError",
    "DiskFullError",
    "DocumentError",
    "DownloadResult",
    "EmptyDocumentError",
    "EncryptedDocumentError",
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
    "PageRangeError",
    "ProtocolError",
    "RetryConfig",
    "S3PullError",
    "S3Source",
    "ServerError",
    "Subscriber",
    "ThrottledError",
    "TimeoutError",
    "Timeouts",
    "TooLargeError",
    "TransferConfig",
    "TransferError",
    "TransientError",
    "UnsafePathError",
    "__version__",
    "clean",
    "format_size",
    "iter_csv",
    "iter_lines",
    "iter_parquet_batches",
    "parse_size",
    "parse_source",
]

#: Where each public name lives.
_MODULES = {
    "AccessDeniedError": "._errors",
    "AsyncClient": "._client",
    "BatchResult": "._results",
    "BreakerConfig": "._config",
    "CircuitOpenError": "._errors",
    "DeadLetterError": "._errors",
    "Client": "._sync",
    "ConfigError": "._errors",
    "CredentialsError": "._errors",
    "DiskFullError": "._errors",
    "DownloadResult": "._results",
    "EndpointUnavailableError": "._errors",
    "HttpSource": "._source",
    "IntegrityError": "._errors",
    "InvalidSourceError": "._errors",
    "Inventory": ".scheduling",
    "InventoryRecord": ".consumers",
    "LocalError": "._errors",
    "LoggingSubscriber": "._events",
    "NetworkError": "._errors",
    "NotFoundError": "._errors",
    "ObjectChangedError": "._errors",
    "ObjectInfo": "._results",
    "ObjectOutcome": "._results",
    "ObjectReader": ".scheduling",
    "ObjectStream": ".scheduling",
    "ProtocolError": "._errors",
    "RetryConfig": "._config",
    "S3PullError": "._errors",
    "S3Source": "._source",
    "ServerError": "._errors",
    "Subscriber": "._events",
    "ThrottledError": "._errors",
    "TimeoutError": "._errors",
    "Timeouts": "._config",
    "TransferConfig": "._config",
    "TransferError": "._errors",
    "TransientError": "._errors",
    "UnsafePathError": "._errors",
    "CorruptDocumentError": "._errors",
    "DocumentError": "._errors",
    "EmptyDocumentError": "._errors",
    "EncryptedDocumentError": "._errors",
    "PageRangeError": "._errors",
    "TooLargeError": "._errors",
    "clean": "._clean",
    "format_size": "._units",
    "iter_csv": ".consumers",
    "iter_lines": ".consumers",
    "iter_parquet_batches": ".consumers",
    "parse_size": "._units",
    "parse_source": "._source",
}


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 's3pull' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
