"""Integrity checks for parts downloaded in parallel, in any order.

Two kinds of check, chosen per object by :func:`choose_check`:

- **CRC family** (S3's CRC32, CRC32C, CRC64NVME full-object checksums): each
  part keeps a running CRC of the bytes it wrote, in the order it wrote them
  (a resumed body continues the same CRC), and the parts' CRCs are combined
  in offset order at the end with ``awscrt``'s ``combine_*`` — no second
  pass over the data, ~25 GB/s per core.
- **Sequential hashes** (MD5 of a single-part ETag, SHA1, SHA256): these
  cannot be combined, so :class:`OrderedHasher` follows the contiguous prefix
  of completed parts and hashes it from the temp file on a worker thread
  (hashlib and ``os.pread`` release the GIL) while later parts are still
  downloading. Reading back what was written also checks the offsets.

Composite (``-N``) checksums and multipart / SSE-KMS ETags describe no
byte sequence we can recompute, so they are never checked and never cause a
false failure.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import IntegrityError
from ._results import ObjectInfo

_CHUNK = 1 << 20

Update = Callable[[bytes | memoryview, int], int]
Combine = Callable[[int, int, int], int]


def _zlib_crc32(data: bytes | memoryview, previous: int) -> int:
    return zlib.crc32(data, previous)


_CRC_NAMES = frozenset({"CRC32", "CRC32C", "CRC64NVME"})


@functools.cache
def _crcs() -> dict[str, tuple[Update, Combine, int]]:
    # awscrt is imported on first use: its import costs ~0.1 s of start-up
    # that a download with an MD5 or no checksum at all would pay for nothing.
    from awscrt import checksums as crt

    return {
        "CRC32": (_zlib_crc32, crt.combine_crc32, 4),  # zlib's is the faster CRC32 here
        "CRC32C": (crt.crc32c, crt.combine_crc32c, 4),
        "CRC64NVME": (crt.crc64nvme, crt.combine_crc64nvme, 8),
    }


_HASHES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256"}


def new_hash(algorithm: str) -> hashlib._Hash:
    """A hashlib object for an S3 algorithm name (``MD5``, ``SHA1``, ``SHA256``)."""
    return hashlib.new(_HASHES[algorithm])


@dataclass(frozen=True, slots=True)
class Check:
    """What to verify: ``algorithm`` and the ``expected`` value the store gave.

    ``expected`` is base64 for S3 checksums and hex for an MD5 ETag.
    """

    algorithm: str
    expected: str

    @property
    def is_crc(self) -> bool:
        return self.algorithm in _CRC_NAMES


def choose_check(info: ObjectInfo) -> Check | None:
    """The cheapest trustworthy check for this object, or None.

    Example:
        >>> choose_check(ObjectInfo("s3://b/k", 3, checksums={"CRC32C": "bu8DJg=="}))
        Check(algorithm='CRC32C', expected='bu8DJg==')
    """
    full = info.full_object_checksum()
    if full is not None and (full[0] in _CRC_NAMES or full[0] in _HASHES):
        return Check(*full)
    if info.md5 is not None:
        return Check("MD5", info.md5)
    return None


class RunningCrc:
    """A CRC over the bytes of one part, fed in order."""

    __slots__ = ("_algorithm", "_update", "length", "value")

    def __init__(self, algorithm: str) -> None:
        self._algorithm = algorithm
        self._update: Update | None = None
        self.value = 0
        self.length = 0

    def update(self, data: bytes | memoryview) -> None:
        if self._update is None:
            # Looked up with the first bytes, not before the GET: awscrt's
            # import (~40 ms, holding the GIL) then runs while the run's
            # first requests are already out, not in front of them.
            self._update = _crcs()[self._algorithm][0]
        self.value = self._update(data, self.value)
        self.length += len(data)


def combine_crcs(algorithm: str, parts: list[RunningCrc]) -> str:
    """The base64 CRC of the concatenation of ``parts`` (in order), as S3 writes it."""
    _, combine, width = _crcs()[algorithm]
    value = 0
    for part in parts:
        value = combine(value, part.value, part.length)
    return digest_text(algorithm, value.to_bytes(width, "big"))


def digest_text(algorithm: str, digest: bytes) -> str:
    """``digest`` as the store writes it: hex for an MD5 ETag, base64 otherwise."""
    return digest.hex() if algorithm == "MD5" else base64.b64encode(digest).decode()


def mismatch_error(check: Check, actual: str, *, source: str, attempts: int) -> IntegrityError:
    """The error for bytes whose checksum is ``actual`` where ``check`` wanted another."""
    return IntegrityError(
        f"{check.algorithm} mismatch: the store says {check.expected}, "
        f"the downloaded bytes give {actual}",
        source=source,
        attempts=attempts,
    )


class OrderedHasher:
    """Hashes a file's contiguous completed prefix while the rest downloads.

    Call :meth:`advance` whenever the contiguous prefix grows and
    :meth:`finish` for the digest of the whole file; :meth:`close` always.
    It reads through its own duplicate of the file descriptor, one
    ``_CHUNK`` at a time, on a worker thread.
    """

    def __init__(self, algorithm: str, fd: int, size: int) -> None:
        self._hash = new_hash(algorithm)
        self._fd = os.dup(fd)  # the temp file may be closed before our thread notices
        self._size = size
        self._hashed = 0
        self._target = 0
        self._task: asyncio.Task[None] | None = None
        # Held by the worker thread while it reads; close() takes it so the
        # descriptor is never closed (and its number reused) under a read.
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False

    def advance(self, contiguous: int) -> None:
        """The first ``contiguous`` bytes of the file are now final."""
        self._target = max(self._target, contiguous)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._hashed < self._target and not self._stopping:
            end = self._target
            await loop.run_in_executor(None, self._hash_range, self._hashed, end)
            self._hashed = end

    def _hash_range(self, start: int, end: int) -> None:
        with self._lock:
            position = start
            while position < end and not self._closed:
                data = os.pread(self._fd, min(_CHUNK, end - position), position)
                if not data:
                    raise OSError(f"temp file shorter than expected at byte {position}")
                self._hash.update(data)
                position += len(data)

    async def finish(self) -> bytes:
        """Hash whatever is left and return the digest of all ``size`` bytes."""
        self.advance(self._size)
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
            if self._hashed < self._size:
                self.advance(self._size)
        if self._task is not None:
            self._task.result()  # re-raise a read error
        return self._hash.digest()

    def close(self) -> None:
        """Stop hashing and release the descriptor (waits for at most one chunk)."""
        self._stopping = True
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)
