"""Reading an object in order while it downloads: parallel ranged GETs feeding
a bounded window.

The algorithm
-------------
1. **Ask and plan** as a file download does: one HEAD, the object cut into
   parts, every GET pinned to the ETag/version.
2. **Hold the window.** The stream holds its window of the client's memory
   budget from open to close (``MemoryBudget.hold``). The window holds
   ``ahead = window // part_size`` parts: the one the reader is in and those
   after it. Windows come from the share of the budget that streams may
   hold, which always leaves room for GETs; a stream that finds less free
   than it asked for gets a smaller window, down to one part, and one that
   finds not even that waits its turn (``planning._windows``). Its GETs (one
   stream cost each) come on top, as for every download, so no number of
   open streams can starve the GETs that fill them.
3. **Fetch ahead.** Part workers (the part fetcher's, ``_parts``, with
   resume-from-byte, retries and stall detection as for files) take parts
   in order, but a part's GET is sent only once the part is inside the
   window. Their bodies are asked of the transport as in-order streams
   (read on the event loop). Socket chunks are kept as they arrive (no
   copy) in their part's queue.
4. **Read in order.** The reader takes chunks from the head part's queue as
   soon as they arrive, moves to the next part when the head one is
   complete, and thereby makes room for one more part ahead.
5. **Verify at the end.** Per-part CRCs are combined as for files; MD5/SHA
   are computed over the bytes as the reader takes them. A mismatch is
   raised by the read that reaches the end, instead of a clean EOF, since
   the bytes already handed out cannot be taken back.

A server that ignores ``Range`` is read as one plain GET; the window then
applies back-pressure through the socket (after each chunk the body waits
for room for its next byte, and unread bytes wait in the kernel).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType

from .._checksums import Check, choose_check, digest_text, mismatch_error, new_hash
from .._errors import S3PullError
from .._results import ObjectInfo
from .._source import S3Source, Source
from ..planning import Part, plan_parts
from ._budget import MemoryBudget
from ._parts import ObjectDownload, PartFetcher


class _Window:
    """The sink of an ordered stream: chunks of the parts ahead of the reader.

    Part ``i`` may be fetched only while ``next <= i < next + ahead``: its
    GET is sent once :meth:`room` says so, and its body waits there after
    every chunk. (A chunk that runs past a part's end into a part beyond
    the window is kept whole: one socket read, already in memory.)
    """

    def __init__(self, parts: list[Part], ahead: int) -> None:
        self.parts = parts
        self.part_size = parts[0].length if parts else 1
        self.ahead = ahead
        self.next = 0
        self.error: BaseException | None = None
        self._filled = [part.first for part in parts]  # next offset expected, per part
        self._chunks: dict[int, deque[bytes]] = {}
        self._readable = asyncio.Event()
        self._advanced = asyncio.Event()

    async def room(self, offset: int) -> None:
        """Wait until the part holding byte ``offset`` is inside the window."""
        index = offset // self.part_size
        while index >= self.next + self.ahead and index < len(self.parts):
            await self._advanced.wait()

    def put(self, data: memoryview | bytes, offset: int) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)  # the reader's buffer is reused: keep a copy
        while data:
            index = offset // self.part_size
            part = self.parts[index]
            end = min(part.last + 1, offset + len(data))
            piece, data = (data, b"") if end - offset == len(data) else _split(data, end - offset)
            have = self._filled[index]
            if end > have:
                # A retry may send again bytes the part already holds (same
                # version, same content): keep only what is new.
                new = piece if offset == have else piece[have - offset :]
                self._chunks.setdefault(index, deque()).append(new)
                self._filled[index] = end
                if index == self.next:
                    self._readable.set()
            offset = end

    async def read_chunk(self) -> bytes:
        """The next bytes in order; ``b""`` once every part has been read."""
        while (chunk := self.ready_chunk()) is None:
            if self.error is not None:
                raise self.error
            self._readable.clear()
            await self._readable.wait()
        return chunk

    def ready_chunk(self) -> bytes | None:
        """The next bytes if they are already here, ``b""`` at the end, else None."""
        while self.next < len(self.parts):
            chunks = self._chunks.get(self.next)
            if chunks:
                return chunks.popleft()
            if self._filled[self.next] <= self.parts[self.next].last:
                return None
            self._chunks.pop(self.next, None)
            self.next += 1
            self._advanced.set()  # wake writers waiting for room...
            self._advanced = asyncio.Event()  # ...and wait anew from here on
        return b""

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._readable.set()


def _split(data: bytes, at: int) -> tuple[bytes, bytes]:
    return data[:at], data[at:]


class ObjectStream:
    """An object's bytes in order, fetched ahead in parallel within a bounded window.

    Made by :meth:`AsyncClient.open`; use it as an async context manager (or
    call :meth:`aclose`), then ``read(n)``, ``readinto(buffer)`` or
    ``async for chunk in stream``.

    Attributes:
        info: what the object is (size, ETag, version...).
        window: bytes of the memory budget this stream holds for its parts.
        part_size: bytes per ranged GET.
    """

    def __init__(
        self,
        fetcher: PartFetcher,
        budget: MemoryBudget,
        source: Source,
        info: ObjectInfo,
        *,
        window: int,
        part_size: int,
        held: int,
    ) -> None:
        """``held``: the bytes of ``budget`` held for this stream (its window
        and what its user holds beside it), given back by :meth:`aclose`."""
        self.info = info
        self.window = window
        self.part_size = part_size
        self._fetcher = fetcher
        self._budget = budget
        self._source = source
        parts = plan_parts(info.size, part_size)
        self._window = _Window(parts, ahead=max(1, window // part_size))
        check = choose_check(info) if fetcher.config.verify else None
        # CRCs are kept per part by the workers; MD5/SHA need order: the reader's.
        crc_check = check if check is not None and check.is_crc else None
        self._ordered_check = check if check is not None and not check.is_crc else None
        ordered = self._ordered_check
        self._hash = new_hash(ordered.algorithm) if ordered is not None else None
        if isinstance(source, S3Source) and info.version_id and not source.version_id:
            source = S3Source(source.bucket, source.key, info.version_id)
        self._state = ObjectDownload(source, info, crc_check, window=self._window)
        self._parts = parts
        self._task: asyncio.Task[None] | None = None
        self._held = held
        self._pending = b""
        self._position = 0
        self._closed = False
        #: What was checked beyond sizes (``"CRC32C"``, ``"MD5"``...), known at the end.
        self.verified: str | None = None

    def start(self) -> ObjectStream:
        """Start fetching (``open`` does this, once the window is held)."""
        missing = self._state.start(self._parts)
        self._fetcher.events.queued(self._state.redacted, self.info.size)
        self._task = asyncio.get_running_loop().create_task(self._fetch(missing))
        return self

    async def _fetch(self, missing: list[Part]) -> None:
        try:
            await self._fetcher.fetch_all(self._state, missing)
            self.verified = await self._fetcher.verify(self._state)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._window.fail(error)

    @property
    def size(self) -> int:
        return self.info.size

    @property
    def attempts(self) -> int:
        """HTTP requests made so far, retries included."""
        return self._state.attempts

    @property
    def position(self) -> int:
        """Bytes handed to the reader so far."""
        return self._position

    async def _next_chunk(self) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        if self._closed:
            raise ValueError("read from a closed stream")
        chunk = await self._window.read_chunk()
        if chunk and self._hash is not None:
            self._hash.update(chunk)
        if not chunk:
            await self._finish()
        return chunk

    async def _finish(self) -> None:
        """At the end: wait for the fetcher's last word and check MD5/SHA."""
        if self._task is not None:
            await self._task
        if self._window.error is not None:
            raise self._window.error
        check: Check | None = self._ordered_check
        if check is not None and self._hash is not None:
            actual = digest_text(check.algorithm, self._hash.digest())
            self._hash = None
            if actual != check.expected:
                raise mismatch_error(
                    check, actual, source=self._state.redacted, attempts=self._state.attempts
                )
            self.verified = check.algorithm

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest if negative); ``b""`` at the end.

        Returns as soon as some bytes are there, like a socket: fewer than
        ``size`` does not mean the end.
        """
        if size < 0:
            return b"".join([chunk async for chunk in self])
        if size == 0:
            return b""
        chunk = await self._next_chunk()
        if len(chunk) > size:
            chunk, self._pending = chunk[:size], chunk[size:]
        self._position += len(chunk)
        return chunk

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` with the next bytes; return how many (0 at the end).

        Waits for the first bytes only, then takes whatever else has already
        arrived, so that few calls move many bytes.
        """
        view = memoryview(buffer).cast("B")
        filled = 0
        chunk = await self._next_chunk()
        while chunk:
            take = min(len(chunk), len(view) - filled)
            view[filled : filled + take] = chunk[:take]
            filled += take
            if take < len(chunk):
                self._pending = chunk[take:]
                break
            if filled == len(view) or self._closed:
                break
            chunk = self._ready_chunk()
        self._position += filled
        return filled

    def _ready_chunk(self) -> bytes:
        """A chunk that is already here (hashed), or ``b""`` if none is."""
        chunk = self._window.ready_chunk()
        if not chunk:
            return b""  # the end is confirmed by the next, awaited, read
        if self._hash is not None:
            self._hash.update(chunk)
        return chunk

    def __aiter__(self) -> ObjectStream:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._next_chunk()
        if not chunk:
            raise StopAsyncIteration
        self._position += len(chunk)
        return chunk

    async def aclose(self) -> None:
        """Stop fetching, drop what the window holds and give its budget back."""
        await self.stop()
        if self._held:
            held, self._held = self._held, 0
            self._budget.unhold(held)

    async def stop(self) -> None:
        """Stop fetching and drop what the window holds; keep the budget until
        :meth:`aclose` (a reader thread may still hold buffers of its own)."""
        self._closed = True
        self._pending = b""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, S3PullError):
                await self._task
            self._task = None
        self._window.fail(ValueError("read from a closed stream"))

    async def __aenter__(self) -> ObjectStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
