"""Sources: what to download. ``s3://bucket/key`` or an ``http(s)://`` URL.

A presigned URL is a bearer credential, so an :class:`HttpSource` never shows
its query values: ``str()``, ``repr()``, logs and errors all use
:attr:`HttpSource.redacted`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from ._errors import InvalidSourceError

# Bucket names as S3 allows them, plus upper case and underscores, which some
# S3-compatible stores and legacy us-east-1 buckets accept.
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
# Query parameters that are safe to show; every other value is redacted.
_PUBLIC_PARAMS = frozenset({"versionId", "partNumber", "X-Amz-Expires", "X-Amz-Date"})


@dataclass(frozen=True, slots=True)
class S3Source:
    """An object in a bucket, optionally a specific version.

    Example:
        >>> S3Source("bucket", "dir/file.bin").url
        's3://bucket/dir/file.bin'
    """

    bucket: str
    key: str
    version_id: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def shown(self) -> str:
        """The URL alone, as results show it (their ``version_id`` says the
        version): control characters a key may hold are escaped, so that
        printing a hostile key cannot drive a terminal."""
        url = f"s3://{self.bucket}/{self.key}"  # self.url, without a property call: several a GET
        if not url.isprintable():
            url = "".join(c if c.isprintable() else repr(c)[1:-1] for c in url)
        return url

    @property
    def redacted(self) -> str:
        """The URL as errors and logs show it: :attr:`shown`, and the version if pinned."""
        if self.version_id:
            return f"{self.shown} (version {self.version_id})"
        return self.shown

    @property
    def name(self) -> str:
        """The last path segment of the key: the default local file name."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.redacted


@dataclass(frozen=True, slots=True)
class HttpSource:
    """A plain HTTP(S) URL, e.g. a presigned S3 URL. Its query values are secret."""

    url: str = field(repr=False)

    @property
    def shown(self) -> str:
        """The URL as results show it: :attr:`redacted`."""
        return self.redacted

    @property
    def redacted(self) -> str:
        parts = urlsplit(self.url)
        # user:password@ is dropped; an IPv6 address keeps its brackets.
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, redact_query(parts.query), ""))

    @property
    def name(self) -> str:
        path = urlsplit(self.url).path.rstrip("/")
        return path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"HttpSource({self.redacted!r})"


Source = S3Source | HttpSource


def redact_query(query: str) -> str:
    """``query`` with every value hidden but a few harmless ones; a bare
    token (``?abc123``, no ``=``) is a value too.

    Example:
        >>> redact_query("X-Amz-Expires=60&X-Amz-Signature=abc&token")
        'X-Amz-Expires=60&X-Amz-Signature=REDACTED&REDACTED'
    """
    shown = []
    for piece in query.split("&") if query else []:
        name, equals, _ = piece.partition("=")
        if not equals:
            shown.append("REDACTED")
        elif unquote_plus(name) in _PUBLIC_PARAMS:
            shown.append(piece)
        else:
            shown.append(f"{name}=REDACTED")
    return "&".join(shown)


def parse_source(text: str | Source, *, version_id: str | None = None) -> Source:
    """Parse ``s3://bucket/key`` or ``http(s)://...`` into a source.

    Args:
        text: the URL, or an already parsed source.
        version_id: pin an S3 object version.

    Returns:
        An :class:`S3Source` or :class:`HttpSource`.

    Raises:
        InvalidSourceError: the URL is malformed or of another scheme.

    Example:
        >>> parse_source("s3://bucket/k.txt").key
        'k.txt'
    """
    if isinstance(text, S3Source | HttpSource):
        source: Source = text
    elif not isinstance(text, str):
        raise InvalidSourceError(f"a source must be a URL string, not {type(text).__name__}")
    elif text.startswith("s3://"):
        bucket, _, key = text[len("s3://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise InvalidSourceError(f"invalid bucket name in {text!r}")
        if not key:
            raise InvalidSourceError(
                f"{text!r} names a bucket, not an object "
                "(to download everything under a prefix: cp --recursive)"
            )
        if "\x00" in key:
            raise InvalidSourceError("an S3 key must not contain NUL")
        source = S3Source(bucket, key)
    elif text.startswith(("http://", "https://")):
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError as exc:
            raise InvalidSourceError(f"malformed URL: {exc}") from None
        if not parts.hostname:
            raise InvalidSourceError("URL has no host")
        source = HttpSource(text)
    else:
        # It may still be a presigned URL with a typo: never echo its query.
        base, question, query = text.partition("?")
        shown = base if len(base) < 80 else base[:77] + "..."
        if question:
            shown += "?" + redact_query(query)
        raise InvalidSourceError(
            f"unsupported source {shown!r}: expected s3://bucket/key or an http(s):// URL"
        )
    if version_id is not None:
        if not isinstance(source, S3Source):
            raise InvalidSourceError("version_id applies to s3:// sources only")
        source = S3Source(source.bucket, source.key, version_id)
    return source


def parse_prefix(text: str) -> S3Source:
    """Parse ``s3://bucket/prefix`` (or ``s3://bucket``): every key under the prefix.

    The returned source's ``key`` is the prefix, possibly empty.

    Raises:
        InvalidSourceError: not an ``s3://`` URL, or a malformed bucket name.

    Example:
        >>> parse_prefix("s3://logs/2024/").key, parse_prefix("s3://logs").key
        ('2024/', '')
    """
    if not isinstance(text, str) or not text.startswith("s3://"):
        raise InvalidSourceError(f"expected s3://bucket/prefix, got {text!r}")
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidSourceError(f"invalid bucket name in {text!r}")
    if "\x00" in prefix:
        raise InvalidSourceError("an S3 prefix must not contain NUL")
    return S3Source(bucket, prefix)
