"""The in-memory object store behind :class:`~s3pull.testing.FaultServer`.

Buckets hold a dict ``key -> versions`` plus a list of keys kept sorted (Python
orders ``str`` by code point, which is the UTF-8 byte order S3 lists in), so a
ListObjectsV2 page is one ``bisect`` and a walk of at most ``max-keys`` entries,
whatever the size of the bucket.

A body is one of three sources, all read through ``read(start, end)``:

* :class:`BytesBody` - bytes in memory;
* :class:`FileBody` - a file on disk, served with ``sendfile`` (hundreds of MB
  cost no memory);
* :class:`GeneratedBody` - bytes computed from ``(key, seed)`` on demand, so a
  test can list 100k objects or download a 1 GiB object without storing either.

ETags and checksums are computed lazily and cached on the object: a 100k-key
bucket costs nothing until it is listed, and a large file costs one pass the
first time a response needs its ETag.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import itertools
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final, Literal

ChecksumAlgorithm = Literal["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
ChecksumType = Literal["FULL_OBJECT", "COMPOSITE"]
CHECKSUM_ALGORITHMS: Final = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

_READ_CHUNK: Final = 1 << 20
_PATTERN_LEN: Final = 65521  # prime, so patterns of neighbouring keys do not line up


class S3Error(Exception):
    """An S3 error response: status, code, message and extra XML fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: str,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.fields = fields


# --------------------------------------------------------------------------- bodies


class BytesBody:
    """A body held in memory."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(bytes(data))
        self.size = len(data)

    def read(self, start: int, end: int) -> bytes | memoryview:
        return self.data[start:end]


class FileBody:
    """A body read from a file on disk (its size is taken when it is stored)."""

    __slots__ = ("path", "size")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.size = os.stat(self.path).st_size

    def open(self) -> BinaryIO:
        # A local open() is a few microseconds: not worth a thread hop on the event loop.
        return open(self.path, "rb")

    def read(self, start: int, end: int) -> bytes | memoryview:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return os.pread(fd, end - start, start)
        finally:
            os.close(fd)


@functools.lru_cache(maxsize=16)
def _pattern(seed: int) -> bytes:
    """Two copies of a pseudo-random block, so any ``_PATTERN_LEN`` slice is contiguous."""
    blocks = []
    for counter in itertools.count():
        blocks.append(hashlib.sha256(f"{seed}:{counter}".encode()).digest())
        if len(blocks) * 32 >= _PATTERN_LEN:
            break
    block = b"".join(blocks)[:_PATTERN_LEN]
    return block + block


class GeneratedBody:
    """A deterministic body: byte ``i`` depends only on ``(key, seed, i)``."""

    __slots__ = ("offset", "seed", "size")

    def __init__(self, key: str, size: int, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        self.size = size
        self.seed = seed
        self.offset = zlib.crc32(key.encode("utf-8", "surrogatepass")) % _PATTERN_LEN

    def read(self, start: int, end: int) -> bytes | memoryview:
        pattern = _pattern(self.seed)
        pieces = []
        position = (self.offset + start) % _PATTERN_LEN
        remaining = end - start
        while remaining > 0:
            take = min(remaining, _PATTERN_LEN)
            pieces.append(pattern[position : position + take])
            remaining -= take
            position = (position + take) % _PATTERN_LEN
        return b"".join(pieces)


Body = BytesBody | FileBody | GeneratedBody


def generate_bytes(key: str, size: int, seed: int = 0) -> bytes:
    """Return the body the server generates for ``put_generated`` / ``put_many``.

    Args:
        key: the object key (part of the pattern, so neighbours differ).
        size: number of bytes.
        seed: the seed given when the object was stored.

    Returns:
        The ``size`` bytes the server would send for that object.

    Example:
        >>> generate_bytes("k", 4) == generate_bytes("k", 8)[:4]
        True
    """
    return bytes(GeneratedBody(key, size, seed).read(0, size))


def iter_body(body: Body, start: int, end: int, chunk: int = _READ_CHUNK) -> Iterator[bytes]:
    """Yield ``body[start:end]`` in chunks of at most ``chunk`` bytes."""
    for offset in range(start, end, chunk):
        yield bytes(body.read(offset, min(end, offset + chunk)))


# --------------------------------------------------------------------------- checksums


def _digest(algorithm: str, chunks: Iterable[bytes]) -> bytes:
    if algorithm == "CRC32":
        crc = 0
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
        return crc.to_bytes(4, "big")
    if algorithm in ("CRC32C", "CRC64NVME"):
        from awscrt import checksums  # imported lazily: only these two need awscrt

        function = checksums.crc32c if algorithm == "CRC32C" else checksums.crc64nvme
        value = 0
        for chunk in chunks:
            value = int(function(chunk, value))
        return value.to_bytes(4 if algorithm == "CRC32C" else 8, "big")
    if algorithm in ("SHA1", "SHA256"):
        hasher = hashlib.new(algorithm.lower())
        for chunk in chunks:
            hasher.update(chunk)
        return hasher.digest()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}; use one of {CHECKSUM_ALGORITHMS}")


def compute_checksum(
    body: Body, algorithm: str, checksum_type: str = "FULL_OBJECT", part_size: int | None = None
) -> str:
    """The base64 checksum S3 reports for a body (``base64-N`` when composite)."""
    if checksum_type == "FULL_OBJECT":
        return base64.b64encode(_digest(algorithm, iter_body(body, 0, body.size))).decode()
    size = part_size or max(body.size, 1)
    parts = [
        _digest(algorithm, iter_body(body, start, min(body.size, start + size)))
        for start in range(0, max(body.size, 1), size)
    ]
    combined = _digest(algorithm, [b"".join(parts)])
    return f"{base64.b64encode(combined).decode()}-{len(parts)}"


def compute_etag(body: Body, part_size: int | None = None) -> str:
    """The MD5 ETag (unquoted); multipart-style ``md5-N`` when ``part_size`` is given."""
    if part_size is None:
        hasher = hashlib.md5(usedforsecurity=False)
        for chunk in iter_body(body, 0, body.size):
            hasher.update(chunk)
        return hasher.hexdigest()
    digests = [
        hashlib.md5(
            bytes(body.read(start, min(body.size, start + part_size))), usedforsecurity=False
        ).digest()
        for start in range(0, max(body.size, 1), part_size)
    ]
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(digests)}"


# --------------------------------------------------------------------------- objects


class StoredObject:
    """One version of an object as the server holds it (read-only for tests).

    Attributes:
        bucket: bucket name.
        key: the key, verbatim.
        size: body size in bytes.
        etag: the ETag without quotes (computed on first access).
        version_id: the version id, or None in an unversioned bucket.
        last_modified: seconds since the epoch (whole seconds, as S3 reports).
        content_type, content_encoding: served as stored.
        checksum_algorithm, checksum_type: the checksum the object carries, if any.
        checksum: the base64 checksum value (computed on first access), or None.
        metadata: user metadata served as ``x-amz-meta-*`` headers.
        encryption: served as ``x-amz-server-side-encryption`` (``"aws:kms"``...);
            give an ``etag`` too, as S3's ETag of an SSE-KMS object is not its MD5.
        delete_marker: True for a delete marker in a versioned bucket.

    Example:
        >>> obj = server.put_object("b", "k", b"hello")  # doctest: +SKIP
        >>> obj.etag, obj.read()  # doctest: +SKIP
        ('5d41402abc4b2a76b9719d911017c592', b'hello')
    """

    __slots__ = (
        "_checksum",
        "_etag",
        "body",
        "bucket",
        "checksum_algorithm",
        "checksum_type",
        "content_encoding",
        "content_type",
        "delete_marker",
        "encryption",
        "key",
        "last_modified",
        "metadata",
        "part_size",
        "size",
        "version_id",
    )

    def __init__(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        etag: str | None = None,
        version_id: str | None = None,
        last_modified: float | None = None,
        content_type: str = "application/octet-stream",
        content_encoding: str | None = None,
        checksum_algorithm: str | None = None,
        checksum_type: str = "FULL_OBJECT",
        checksum_value: str | None = None,
        part_size: int | None = None,
        metadata: dict[str, str] | None = None,
        encryption: str | None = None,
        delete_marker: bool = False,
    ) -> None:
        if checksum_algorithm is not None and checksum_algorithm not in CHECKSUM_ALGORITHMS:
            raise ValueError(f"checksum_algorithm must be one of {CHECKSUM_ALGORITHMS}")
        if checksum_type not in ("FULL_OBJECT", "COMPOSITE"):
            raise ValueError("checksum_type must be FULL_OBJECT or COMPOSITE")
        if checksum_algorithm == "CRC64NVME" and checksum_type == "COMPOSITE":
            raise ValueError("S3 has no COMPOSITE CRC64NVME checksum")
        if part_size is not None and part_size <= 0:
            raise ValueError("part_size must be > 0")
        self.bucket = bucket
        self.key = key
        self.body = body
        self.size = body.size
        self._etag = etag.strip('"') if etag is not None else None
        self.version_id = version_id
        self.last_modified = int(time.time() if last_modified is None else last_modified)
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.checksum_algorithm = checksum_algorithm
        self.checksum_type = checksum_type
        self._checksum = checksum_value
        self.part_size = part_size
        self.metadata = dict(metadata or {})
        self.encryption = encryption
        self.delete_marker = delete_marker

    @property
    def etag(self) -> str:
        # Races between threads only compute the same value twice.
        if self._etag is None:
            self._etag = compute_etag(self.body, self.part_size)
        return self._etag

    @property
    def checksum(self) -> str | None:
        if self.checksum_algorithm is None:
            return None
        if self._checksum is None:
            self._checksum = compute_checksum(
                self.body, self.checksum_algorithm, self.checksum_type, self.part_size
            )
        return self._checksum

    @property
    def needs_hashing(self) -> bool:
        """True when the next etag/checksum access reads the body."""
        return self._etag is None or (
            self.checksum_algorithm is not None and self._checksum is None
        )

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Return the stored bytes ``[start, end)`` (the whole body by default)."""
        return bytes(self.body.read(start, self.size if end is None else min(end, self.size)))

    def __repr__(self) -> str:
        version = f" version_id={self.version_id!r}" if self.version_id else ""
        return f"<StoredObject {self.bucket}/{self.key!r} size={self.size}{version}>"


class Bucket:
    """A bucket: versions per key plus the keys in sorted order."""

    __slots__ = ("keys", "name", "objects", "versioned")

    def __init__(self, name: str, versioned: bool) -> None:
        self.name = name
        self.versioned = versioned
        self.objects: dict[str, list[StoredObject]] = {}
        self.keys: list[str] = []


class Store:
    """Thread-safe buckets and objects (the test thread writes, the server loop reads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.buckets: dict[str, Bucket] = {}
        self._versions = itertools.count(1)

    def new_version_id(self) -> str:
        # Opaque like S3's, but ordered and reproducible within one server.
        return f"v{next(self._versions):08d}.{os.urandom(4).hex()}"

    def create_bucket(self, name: str, versioned: bool = False) -> None:
        with self.lock:
            bucket = self.buckets.get(name)
            if bucket is None:
                self.buckets[name] = Bucket(name, versioned)
            else:
                bucket.versioned = bucket.versioned or versioned

    def bucket(self, name: str) -> Bucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            raise S3Error(
                404, "NoSuchBucket", "The specified bucket does not exist", BucketName=name
            )
        return bucket

    def put(self, obj: StoredObject) -> StoredObject:
        with self.lock:
            bucket = self.bucket(obj.bucket)
            versions = bucket.objects.get(obj.key)
            if bucket.versioned:
                if obj.version_id is None:
                    obj.version_id = self.new_version_id()
                if versions is None:
                    bucket.objects[obj.key] = [obj]
                else:
                    versions.append(obj)
                    return obj
            else:
                obj.version_id = None
                had = versions is not None
                bucket.objects[obj.key] = [obj]
                if had:
                    return obj
            _insort(bucket.keys, obj.key)
            return obj

    def put_many(self, bucket_name: str, objects: Iterable[StoredObject]) -> int:
        """Add many objects with one sort instead of one insertion each."""
        with self.lock:
            bucket = self.bucket(bucket_name)
            new_keys = []
            count = 0
            for obj in objects:
                count += 1
                if bucket.versioned and obj.version_id is None:
                    obj.version_id = self.new_version_id()
                versions = bucket.objects.get(obj.key)
                if versions is None:
                    bucket.objects[obj.key] = [obj]
                    new_keys.append(obj.key)
                elif bucket.versioned:
                    versions.append(obj)
                else:
                    bucket.objects[obj.key] = [obj]
            if new_keys:
                bucket.keys.extend(new_keys)
                bucket.keys.sort()
            return count

    def delete(self, bucket_name: str, key: str) -> None:
        """Delete a key (a delete marker in a versioned bucket). Missing keys are ignored."""
        with self.lock:
            bucket = self.bucket(bucket_name)
            versions = bucket.objects.get(key)
            if versions is None:
                return
            if bucket.versioned:
                if not versions[-1].delete_marker:
                    marker = StoredObject(
                        bucket_name,
                        key,
                        BytesBody(b""),
                        version_id=self.new_version_id(),
                        delete_marker=True,
                    )
                    versions.append(marker)
                return
            del bucket.objects[key]
            _remove_sorted(bucket.keys, key)

    def get(self, bucket_name: str, key: str, version_id: str | None = None) -> StoredObject:
        """The latest version (or ``version_id``) of a key; raises :class:`S3Error` if absent."""
        with self.lock:
            bucket = self.bucket(bucket_name)
            versions = bucket.objects.get(key)
            if version_id is None:
                if versions is None or versions[-1].delete_marker:
                    headers = {"x-amz-delete-marker": "true"} if versions else {}
                    raise S3Error(
                        404,
                        "NoSuchKey",
                        "The specified key does not exist.",
                        headers=headers,
                        Key=key,
                    )
                return versions[-1]
            wanted = None if version_id == "null" else version_id
            for obj in versions or ():
                if obj.version_id == wanted:
                    if obj.delete_marker:
                        raise S3Error(
                            405,
                            "MethodNotAllowed",
                            "The specified method is not allowed against this resource.",
                            headers={"x-amz-delete-marker": "true"},
                        )
                    return obj
            raise S3Error(
                404,
                "NoSuchVersion",
                "The specified version does not exist.",
                Key=key,
                VersionId=version_id,
            )

    def find(self, bucket_name: str, key: str) -> StoredObject | None:
        """The latest live version of a key, or None (no exception)."""
        with self.lock:
            bucket = self.buckets.get(bucket_name)
            versions = bucket.objects.get(key) if bucket else None
            if not versions or versions[-1].delete_marker:
                return None
            return versions[-1]


def _insort(keys: list[str], key: str) -> None:
    bisect.insort(keys, key)


def _remove_sorted(keys: list[str], key: str) -> None:
    index = bisect.bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]
