"""The documents API: async functions of an :class:`AsyncClient`, and their
sync twins over a :class:`Client`.

A source is an ``s3://`` or ``http(s)://`` URL, downloaded by the client into
a private temp directory within its memory budget (and removed afterwards,
however the call ends), or a local path, read where it is. The PDF itself is
read by a parser process (``_process``), never by this one.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .._client import AsyncClient
from .._errors import DocumentError, LocalError, TooLargeError
from .._source import parse_source
from .._sync import Client
from ..sinks import StagingDirectory, atomic_file
from ._plan import DEFAULT_PAGES_PER_PART, check_split_options
from ._process import parser_messages

T = TypeVar("T")
PathLike = str | os.PathLike[str]
#: ``on_pages(done, total)``: pages read or copied so far, of how many.
OnPages = Callable[[int, int], None]
#: The default cap of :func:`read_text` and :func:`read_json`.
DEFAULT_MAX_BYTES = 8 << 20


@dataclass(frozen=True)
class DocumentInfo:
    """What :func:`info` found out about a PDF.

    Attributes:
        pages: its number of pages.
        size: its size in bytes.
        encrypted: whether it is encrypted (possibly with an empty user password).
        version: its PDF version as an integer (17 for 1.7), if it says.
        metadata: its document information (``Title``, ``Producer``...), as given.
    """

    pages: int
    size: int
    encrypted: bool
    version: int | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        return self.metadata.get("Title")

    @property
    def producer(self) -> str | None:
        return self.metadata.get("Producer")


@dataclass(frozen=True)
class PdfPart:
    """One part written by :func:`split_pdf`: pages ``first``-``last`` (from 1)."""

    path: Path
    first: int
    last: int
    size: int

    @property
    def pages(self) -> int:
        return self.last - self.first + 1

    def to_json(self) -> dict[str, Any]:
        """The part as the CLI's ``--json`` lines and the Celery task's summary show it."""
        fields = {"path": str(self.path), "first": self.first, "last": self.last}
        return {**fields, "pages": self.pages, "size": self.size}


def _is_url(source: PathLike) -> bool:
    return isinstance(source, str) and "://" in source


def _stem(source: PathLike) -> str:
    name = parse_source(source).name if _is_url(source) else Path(source).name  # type: ignore[arg-type]
    stem = Path(name or "document").stem
    return stem or "document"


@asynccontextmanager
async def local_copy(
    source: PathLike, client: AsyncClient | None = None, *, temp_dir: PathLike | None = None
) -> AsyncIterator[Path]:
    """The source as a local file: a path as it is, a URL downloaded (by
    ``client``, or a default one) into a private temp directory that is
    removed when the block ends, however it ends."""
    if not _is_url(source):
        path = Path(source)
        if not path.is_file():  # noqa: ASYNC240 - one stat, before any download
            why = "no such file" if not path.exists() else "not a regular file"  # noqa: ASYNC240
            raise LocalError(f"cannot read {path}: {why}")
        yield path
        return
    assert isinstance(source, str)
    async with _client(client) as own, own.download_to_temp(source, dir=temp_dir) as path:
        yield path


@asynccontextmanager
async def _client(client: AsyncClient | None) -> AsyncIterator[AsyncClient]:
    if client is not None:
        yield client
        return
    async with AsyncClient() as own:
        yield own


async def info_async(
    source: PathLike, *, password: str | None = None, client: AsyncClient | None = None
) -> DocumentInfo:
    """Pages, size, encryption and metadata of a PDF.

    Example:
        >>> info = await info_async("s3://legal/contract.pdf", client=client)  # doctest: +SKIP
        >>> info.pages, info.title  # doctest: +SKIP
        (2300, 'Master agreement')
    """
    async with local_copy(source, client) as path:
        result = await _result({"op": "info", "path": str(path), "password": password})
    return DocumentInfo(**result)


async def split_pdf_async(
    source: PathLike,
    destination: PathLike,
    *,
    pages_per_part: int | None = None,
    ranges: str | None = None,
    password: str | None = None,
    client: AsyncClient | None = None,
    on_pages: OnPages | None = None,
) -> list[PdfPart]:
    """Split a PDF into parts ``<stem>.p0001-0050.pdf``... in ``destination``.

    Every part is written (temp file, fsync, rename) into a private
    directory in ``destination``, and renamed into place only once all of
    them are complete: an error or a cancellation leaves no part (and no
    temp file) behind, and files of the same names untouched.

    Args:
        source: an ``s3://`` / ``http(s)://`` URL or a local path.
        destination: the directory for the parts (made if missing).
        pages_per_part: pages per part (default: 50).
        ranges: instead, the parts' page ranges, e.g. ``"1-100,101-250"``.
        password: the password of an encrypted PDF (default:
            ``S3PULL_PDF_PASSWORD``, read by the parser process).
        client: the client to download with (default: a new one).
        on_pages: called with (pages copied, pages to copy) as parts are made.

    Example:
        >>> parts = await split_pdf_async("s3://b/big.pdf", "/data/parts")  # doctest: +SKIP
        >>> parts[0].path.name  # doctest: +SKIP
        'big.p0001-0050.pdf'
    """
    check_split_options(pages_per_part, ranges)
    if ranges is None and pages_per_part is None:
        pages_per_part = DEFAULT_PAGES_PER_PART
    # The parser process is told absolute paths: its working directory is ours,
    # but a name that means the same to both is one less thing to get wrong.
    directory = Path(os.path.abspath(destination))  # noqa: ASYNC240 - no I/O: the cwd
    request = {
        "op": "split",
        "destination": str(directory),
        "stem": _stem(source),
        "pages_per_part": pages_per_part,
        "ranges": ranges,
        "password": password,
    }
    parts: list[dict[str, Any]] = []
    total = 0
    # Made before the download: a destination that cannot be written is an
    # error now, not after 584 MB.
    staging = await asyncio.to_thread(StagingDirectory, directory)
    try:
        async with local_copy(source, client) as path:
            messages = parser_messages({**request, "path": str(path), "staging": str(staging.path)})
            async with aclosing(messages):
                async for message in messages:
                    if "pages" in message:
                        total = message["pages"]
                    elif "done" in message and on_pages is not None:
                        on_pages(message["done"], total)
                    elif "result" in message:
                        parts = message["result"]
    finally:
        # Empty after a split; after an error or a killed parser, whatever it wrote.
        await asyncio.to_thread(staging.remove)
    return [PdfPart(directory / p["name"], p["first"], p["last"], p["bytes"]) for p in parts]


async def extract_text_async(
    source: PathLike,
    *,
    pages: str | list[int] | None = None,
    password: str | None = None,
    client: AsyncClient | None = None,
    on_pages: OnPages | None = None,
) -> AsyncGenerator[tuple[int, str], None]:
    """``(page number, text)`` of each page (from 1), in order, as the parser
    process reads them.

    Args:
        pages: which pages: a range string (``"1-10,20"``) or page numbers;
            default all.

    Example:
        >>> async for number, text in extract_text_async("s3://b/a.pdf"):  # doctest: +SKIP
        ...     index(number, text)
    """
    async with local_copy(source, client) as path:
        request = {"op": "text", "path": str(path), "pages": pages, "password": password}
        total = done = 0
        # Closed as soon as our caller stops: the parser is killed then, not
        # whenever the garbage collector gets to the generator.
        async with aclosing(parser_messages(request)) as messages:
            async for message in messages:
                if "pages" in message:
                    total = message["pages"]
                elif "text" in message:
                    number, text = message["text"]
                    yield number, text
                    done += 1
                    if on_pages is not None:
                        on_pages(done, total)


#: What separates pages in :func:`extract_text_to`'s file (as pdftotext does).
PAGE_BREAK = "\f"


async def extract_text_to_async(
    source: PathLike,
    destination: PathLike,
    *,
    pages: str | list[int] | None = None,
    password: str | None = None,
    client: AsyncClient | None = None,
    on_pages: OnPages | None = None,
) -> int:
    """Write the text of the PDF's pages to ``destination`` (UTF-8, each page
    followed by a form feed), atomically; return the number of pages.

    Example:
        >>> await extract_text_to_async("s3://b/a.pdf", "/data/a.txt")  # doctest: +SKIP
        2300
    """
    count = 0
    texts = extract_text_async(
        source, pages=pages, password=password, client=client, on_pages=on_pages
    )
    try:
        with atomic_file(Path(destination)) as file:
            async for _number, text in texts:
                file.append((text + PAGE_BREAK).encode("utf-8", "surrogatepass"))
                count += 1
    finally:
        await texts.aclose()
    return count


async def read_text_async(
    source: PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str = "utf-8",
    client: AsyncClient | None = None,
) -> str:
    """The whole of a small text object (a ``metadata.json``, a manifest).

    Its size is checked before any of it is read (the ``HEAD`` of a URL, the
    ``stat`` of a path): above ``max_bytes`` it is :class:`TooLargeError`,
    never an unbounded read.

    Example:
        >>> await read_text_async("s3://b/doc/notes.txt", max_bytes=1 << 20)  # doctest: +SKIP
        'Signed copy, 3 pages.'
    """
    if _is_url(source):
        assert isinstance(source, str)
        async with _client(client) as own:
            info = await own.stat(source)
            _check_size(source, info.size, max_bytes)
            stream = await own.pipelines.open_stream(source, info=info)
            try:
                data = await stream.read()
            finally:
                await stream.aclose()
    else:
        path = Path(source)
        try:
            with open(path, "rb") as file:  # noqa: ASYNC230 - a small local read, capped below
                _check_size(str(path), os.fstat(file.fileno()).st_size, max_bytes)
                data = file.read(max_bytes + 1)
        except OSError as exc:
            raise LocalError(f"cannot read {path}: {exc.strerror}") from None
        _check_size(str(path), len(data), max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"not {encoding} text ({exc.reason} at byte {exc.start})", source=str(source)
        ) from None


def _check_size(source: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise TooLargeError(
            f"{size} bytes: larger than max_bytes ({max_bytes}); not read",
            source=parse_source(source).redacted if _is_url(source) else source,
        )


async def read_json_async(
    source: PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES, client: AsyncClient | None = None
) -> Any:
    """The parsed JSON of a small object; see :func:`read_text_async`.

    Example:
        >>> meta = await read_json_async("s3://b/doc/metadata.json")  # doctest: +SKIP
    """
    text = await read_text_async(source, max_bytes=max_bytes, client=client)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", source=str(source)
        ) from None


async def _result(request: dict[str, Any]) -> Any:
    async with aclosing(parser_messages(request)) as messages:
        async for message in messages:
            if "result" in message:
                return message["result"]
    raise DocumentError("the PDF parser process ended without an answer")  # pragma: no cover


# -- the sync twins: the same coroutines, on a Client's loop thread ------------


@contextmanager
def _sync_client(client: Client | None) -> Iterator[Client]:
    if client is not None:
        yield client
        return
    with Client() as own:
        yield own


def _run(client: Client | None, call: Callable[[AsyncClient], Coroutine[Any, Any, T]]) -> T:
    with _sync_client(client) as sync:
        return sync._run(call(sync._client()))


def info(
    source: PathLike, *, password: str | None = None, client: Client | None = None
) -> DocumentInfo:
    """Pages, size, encryption and metadata of a PDF; see :func:`info_async`.

    Example:
        >>> documents.info("/data/contract.pdf").pages  # doctest: +SKIP
        2300
    """
    return _run(client, lambda own: info_async(source, password=password, client=own))


def split_pdf(
    source: PathLike,
    destination: PathLike,
    *,
    pages_per_part: int | None = None,
    ranges: str | None = None,
    password: str | None = None,
    client: Client | None = None,
    on_pages: OnPages | None = None,
) -> list[PdfPart]:
    """Split a PDF into parts; see :func:`split_pdf_async`.

    Example:
        >>> parts = split_pdf("s3://b/big.pdf", "parts/", ranges="1-100,101-250")  # doctest: +SKIP
    """
    return _run(
        client,
        lambda own: split_pdf_async(
            source,
            destination,
            pages_per_part=pages_per_part,
            ranges=ranges,
            password=password,
            client=own,
            on_pages=on_pages,
        ),
    )


def extract_text(
    source: PathLike,
    *,
    pages: str | list[int] | None = None,
    password: str | None = None,
    client: Client | None = None,
    on_pages: OnPages | None = None,
) -> Iterator[tuple[int, str]]:
    """``(page number, text)`` of each page; see :func:`extract_text_async`.

    Example:
        >>> for number, text in documents.extract_text("/data/a.pdf"):  # doctest: +SKIP
        ...     print(number, len(text))
    """
    with _sync_client(client) as sync:
        texts = extract_text_async(
            source, pages=pages, password=password, client=sync._client(), on_pages=on_pages
        )
        yield from sync._iterate(texts)


def extract_text_to(
    source: PathLike,
    destination: PathLike,
    *,
    pages: str | list[int] | None = None,
    password: str | None = None,
    client: Client | None = None,
    on_pages: OnPages | None = None,
) -> int:
    """Write the text of a PDF to a file, atomically; see :func:`extract_text_to_async`."""
    return _run(
        client,
        lambda own: extract_text_to_async(
            source, destination, pages=pages, password=password, client=own, on_pages=on_pages
        ),
    )


def read_text(
    source: PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str = "utf-8",
    client: Client | None = None,
) -> str:
    """The whole of a small text object, size-checked first; see :func:`read_text_async`."""
    return _run(
        client,
        lambda own: read_text_async(source, max_bytes=max_bytes, encoding=encoding, client=own),
    )


def read_json(
    source: PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES, client: Client | None = None
) -> Any:
    """The parsed JSON of a small object; see :func:`read_json_async`.

    Example:
        >>> documents.read_json("s3://b/doc/metadata.json")["title"]  # doctest: +SKIP
    """
    return _run(client, lambda own: read_json_async(source, max_bytes=max_bytes, client=own))
