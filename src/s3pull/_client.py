"""The asynchronous client: the one implementation behind the API and the CLI."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ._config import TransferConfig
from ._events import Events, LoggingSubscriber, Subscriber
from ._results import DownloadResult, ObjectInfo
from ._source import Source, parse_source
from .planning._paths import destination_file, safe_name
from .planning._retry import RetryBudget
from .scheduling._budget import MemoryBudget
from .scheduling._download import Downloader
from .transport import S3Endpoint, Transport

PathLike = str | os.PathLike[str]


class AsyncClient:
    """Downloads objects from S3, S3-compatible stores and HTTP(S) URLs.

    Everything a client does shares one memory budget, one retry budget and
    one connection pool. Use it as an async context manager, or call
    :meth:`aclose`.

    Args:
        config: part size, concurrency, memory budget, timeouts, retries.
        endpoint_url: a custom S3 API endpoint (MinIO, Ceph, R2, a local
            server); default ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS.
        region: the AWS region; default from the profile or environment.
        profile: the AWS profile; default ``AWS_PROFILE``.
        addressing_style: ``auto``, ``path`` or ``virtual``.
        sign: False sends anonymous requests (public buckets).
        subscribers: progress listeners; default: a logger at INFO.

    Example:
        >>> async with AsyncClient() as client:  # doctest: +SKIP
        ...     result = await client.download_file("s3://bucket/big.bin", "/data/")
    """

    def __init__(
        self,
        *,
        config: TransferConfig | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        addressing_style: str = "auto",
        sign: bool = True,
        subscribers: Iterable[Subscriber] | None = None,
    ) -> None:
        self.config = config or TransferConfig()
        self.endpoint = S3Endpoint(
            endpoint_url,
            region=region,
            addressing_style=addressing_style,
            profile=profile,
            sign=sign,
        )
        self.budget = MemoryBudget(self.config.memory_limit)
        self.retry_budget = RetryBudget(self.config.retry.retry_budget)
        self.events = Events([LoggingSubscriber()] if subscribers is None else subscribers)
        self._transport = Transport(self.config, self.endpoint)
        self._downloader = Downloader(
            self.config, self._transport, self.budget, self.retry_budget, self.events
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.close()

    async def stat(self, source: str | Source, *, version_id: str | None = None) -> ObjectInfo:
        """Size, ETag, version, last-modified, checksums and content type, without
        downloading the object.

        Example:
            >>> info = await client.stat("s3://bucket/report.pdf")  # doctest: +SKIP
            >>> info.size
            612368384
        """
        return await self._downloader.stat(parse_source(source, version_id=version_id))

    async def download_file(
        self,
        source: str | Source,
        destination: PathLike,
        *,
        version_id: str | None = None,
        info: ObjectInfo | None = None,
    ) -> DownloadResult:
        """Download one object to a file, atomically.

        Args:
            source: ``s3://bucket/key`` or an ``http(s)://`` URL.
            destination: a file path, or a directory (existing, or written
                with a trailing ``/``) to put the object in under its own name.
            version_id: download this S3 version.
            info: a previous :meth:`stat` of the object, to save the HEAD.

        Returns:
            A :class:`DownloadResult`.

        Raises:
            S3PullError: the download failed; nothing was left at the destination.

        Example:
            >>> await client.download_file("s3://bucket/a.bin", "/tmp/a.bin")  # doctest: +SKIP
        """
        parsed = parse_source(source, version_id=version_id)
        path = Path(destination)
        # One stat of a local directory entry: not worth a thread hop.
        is_dir = os.fspath(destination).endswith(os.sep) or path.is_dir()  # noqa: ASYNC240
        target = destination_file(parsed.name, path, is_dir=is_dir, source=parsed.redacted)
        return await self._downloader.download(parsed, target, info=info)

    @asynccontextmanager
    async def download_to_temp(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        dir: PathLike | None = None,
    ) -> AsyncIterator[Path]:
        """Download to a private temp directory; yield the file's path; remove it
        on exit, whatever happens (exceptions, cancellation).

        The file keeps the object's name, so tools that look at the extension
        still work.

        Example:
            >>> async with client.download_to_temp("s3://b/doc.pdf") as path:  # doctest: +SKIP
            ...     text = extract(path)
        """
        path = await self._download_temp(source, version_id, dir)
        try:
            yield path
        finally:
            remove_temp(path)

    async def open_temp(
        self,
        source: str | Source,
        *,
        version_id: str | None = None,
        dir: PathLike | None = None,
    ) -> BinaryIO:
        """Download to a temp file and return it open for reading (binary).

        The file has no name any more by the time you get it: it disappears
        when the file object is closed, or when the process dies.

        Example:
            >>> with await client.open_temp("s3://b/data.parquet") as f:  # doctest: +SKIP
            ...     header = f.read(4)
        """
        path = await self._download_temp(source, version_id, dir)
        try:
            return open(path, "rb")  # noqa: ASYNC230 - a local open, owned by the caller
        finally:
            remove_temp(path)

    async def _download_temp(
        self, source: str | Source, version_id: str | None, dir: PathLike | None
    ) -> Path:
        parsed = parse_source(source, version_id=version_id)
        name = safe_name(parsed.name or "download", source=parsed.redacted)
        directory = Path(tempfile.mkdtemp(prefix="s3pull-", dir=dir))
        try:
            result = await self._downloader.download(parsed, directory / name)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return result.path


def remove_temp(path: Path) -> None:
    """Remove a file made by ``download_to_temp`` and its private directory."""
    shutil.rmtree(path.parent, ignore_errors=True)
