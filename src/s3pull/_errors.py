"""The s3pull exception hierarchy.

Every error s3pull raises derives from :class:`S3PullError`. Other
libraries' exceptions are translated into it in one place per backend,
beside that backend, chained with ``raise ... from``: each HTTP backend in
``transport/`` (worker-thread ``http.client``, the loop's own) maps its own
exceptions, HTTP answers (status, S3 error code) are mapped once for both,
botocore's credential errors where credentials are loaded
(``transport/_s3.py``), and the OS's by one function of the sinks
(``local_error``), wherever a local file is opened or written.

::

    S3PullError
    ├── ConfigError (ValueError)            a bad option or config value
    ├── InvalidSourceError (ValueError)     a malformed s3:// or http(s):// URL
    ├── UnsafePathError (ValueError)        a key that would write outside the destination
    ├── DeadLetterError                     a worker task that killed its worker at each delivery
    ├── LocalError (OSError)                the local side failed
    │   └── DiskFullError                   ENOSPC / EDQUOT, or the free-space preflight
    ├── DocumentError                       a document (PDF, small text/JSON) could not be read
    │   ├── CorruptDocumentError            truncated, damaged, or not a PDF at all
    │   ├── EncryptedDocumentError          a password is needed, or the one given is wrong
    │   ├── PageRangeError (ValueError)     pages outside the document, or a malformed range
    │   ├── EmptyDocumentError              a document of zero pages
    │   └── TooLargeError                   larger than the ``max_bytes`` it may be read with
    └── TransferError                       talking to the store failed
        ├── NotFoundError (FileNotFoundError)   NoSuchKey, NoSuchBucket, NoSuchVersion, 404
        ├── AccessDeniedError (PermissionError) 403 AccessDenied, expired presigned URL
        ├── CredentialsError                    no credentials, expired or invalid token
        ├── ObjectChangedError                  the object changed during the download (412)
        ├── CircuitOpenError                    skipped: the object or its endpoint keeps failing
        │   └── EndpointUnavailableError        skipped: the endpoint's probe failed too
        ├── IntegrityError                      size or checksum mismatch
        ├── ProtocolError                       the server broke HTTP/S3 rules (bad Content-Range)
        └── TransientError                      worth retrying; raised once retries are exhausted
            ├── ThrottledError                  503 SlowDown, 429
            ├── ServerError                     500, 502, 504, 400 RequestTimeout
            ├── NetworkError                    refused, reset, DNS, truncated body
            └── TimeoutError                    connect, first byte, stall, deadline

Every exception pickles with all its fields (Celery moves them between
processes) and none of them ever holds a credential or a presigned
signature: sources are stored in their redacted form.
"""

from __future__ import annotations

import builtins
from typing import Any


def _rebuild(cls: type[S3PullError], message: str, fields: dict[str, Any]) -> S3PullError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error


class S3PullError(Exception):
    """Base class of every s3pull error.

    Attributes:
        source: the redacted source URL the error is about, if any.
        range: the byte range ``(first, last)`` being transferred, if any.
        attempts: how many requests were made before giving up.
        status: the HTTP status, if the error came from a response.
        code: the S3 error code (``NoSuchKey``, ``SlowDown``...), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        range: tuple[int, int] | None = None,
        attempts: int = 0,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.range = range
        self.attempts = attempts
        self.status = status
        self.code = code

    def __str__(self) -> str:
        details = []
        if self.range is not None:
            details.append(f"bytes {self.range[0]}-{self.range[1]}")
        if self.attempts > 1:
            details.append(f"after {self.attempts} attempts")
        prefix = f"{self.source}: " if self.source else ""
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{prefix}{self.message}{suffix}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


class ConfigError(S3PullError, ValueError):
    """A configuration or command-line value is invalid."""


class InvalidSourceError(S3PullError, ValueError):
    """A source URL is malformed or of an unsupported scheme."""


class UnsafePathError(S3PullError, ValueError):
    """A key maps to a local path outside the destination (``../x``, ``/abs``, NUL)."""


class LocalError(S3PullError, OSError):
    """Writing the local file failed (permissions, not a directory, I/O error)."""


class DiskFullError(LocalError):
    """The destination file system is full, or too small for the object."""


class DocumentError(S3PullError):
    """A document could not be read or split (see ``s3pull.documents``); also
    raised when the parser process itself died (killed for memory, a crash)."""


class CorruptDocumentError(DocumentError):
    """The file is not a readable PDF: truncated, damaged, or no PDF at all."""


class EncryptedDocumentError(DocumentError):
    """The PDF is encrypted and no password, or a wrong one, was given."""


class PageRangeError(DocumentError, ValueError):
    """Pages asked for are outside the document, or the range is malformed."""


class EmptyDocumentError(DocumentError):
    """The document has no pages."""


class TooLargeError(DocumentError):
    """The object is larger than the ``max_bytes`` it may be read into memory with."""


class TransferError(S3PullError):
    """Talking to the object store failed."""


class NotFoundError(TransferError, FileNotFoundError):
    """The bucket, key or version does not exist."""


class AccessDeniedError(TransferError, PermissionError):
    """The store refused access (403), including expired presigned URLs."""


class CredentialsError(TransferError):
    """No usable credentials, or the token expired and could not be refreshed."""


class ObjectChangedError(TransferError):
    """The object was overwritten or deleted while it was being downloaded."""


class DeadLetterError(S3PullError):
    """Not downloaded: the Celery task holding the object was delivered too
    many times, and each time the worker running it died (killed for memory,
    or a crash); see ``s3pull.celery``."""


class CircuitOpenError(TransferError):
    """Not attempted: the object's (or its endpoint's) circuit breaker is open
    after repeated failures; see :class:`s3pull.BreakerConfig`."""


class EndpointUnavailableError(CircuitOpenError):
    """Not attempted: the object's endpoint (its bucket, or its HTTP host) kept
    failing, and the probe sent after a pause failed too; the message names the
    endpoint and its last error. See :class:`s3pull.BreakerConfig`."""


class IntegrityError(TransferError):
    """The downloaded bytes do not match the size or checksum the store reported."""


class ProtocolError(TransferError):
    """The server answered against the HTTP or S3 rules (e.g. a wrong Content-Range)."""


class TransientError(TransferError):
    """A failure worth retrying; raised to the caller only once retries are exhausted.

    Attributes:
        retry_after: seconds the server asked us to wait (``Retry-After``), if any.
    """

    retry_after: float | None = None


class ThrottledError(TransientError):
    """The store asked us to slow down (503 SlowDown, 429)."""


class ServerError(TransientError):
    """The store failed internally (500, 502, 504, 400 RequestTimeout)."""


class NetworkError(TransientError):
    """The connection failed: refused, reset, DNS, or a body that ended early."""


class TimeoutError(TransientError, builtins.TimeoutError):
    """Connecting, the first byte, the body (stall) or the whole download took too long."""
