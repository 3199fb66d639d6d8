"""Range planning: which byte ranges to GET, and how many at once. Pure code."""

from __future__ import annotations

from dataclasses import dataclass

from .._config import MAX_PARTS, MiB

#: Default part sizes: AWS suggests ranged GETs of 8-16 MiB.
DEFAULT_PART_SIZE = 8 * MiB
MAX_DEFAULT_PART_SIZE = 16 * MiB
#: Default parts in flight per object: enough to fill ~1 GB/s at ~80 MB/s per connection.
DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Part:
    """The inclusive byte range ``[first, last]`` of an object."""

    index: int
    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def choose_part_size(size: int, requested: int | None = None) -> int:
    """The part size for an object of ``size`` bytes.

    The default follows AWS guidance (8-16 MiB): 16 MiB parts for large
    objects, where fewer requests mean less first-byte latency paid, and
    down to 8 MiB for smaller ones so that they still split into enough
    parts to keep every stream busy. A requested size wins. Either way parts
    grow (in whole MiB) when an object would otherwise need more than S3's
    10,000 parts.

    Example:
        >>> choose_part_size(1 << 30) // MiB
        16
        >>> choose_part_size(64 * MiB) // MiB
        8
    """
    if requested:
        part_size = requested
    else:
        per_stream = -(-size // DEFAULT_CONCURRENCY)
        part_size = min(MAX_DEFAULT_PART_SIZE, max(DEFAULT_PART_SIZE, -(-per_stream // MiB) * MiB))
    if size > part_size * MAX_PARTS:
        smallest = -(-size // MAX_PARTS)
        part_size = -(-smallest // MiB) * MiB
    return part_size


def plan_parts(size: int, part_size: int, *, start: int = 0) -> list[Part]:
    """Split ``[start, size)`` into consecutive parts of at most ``part_size`` bytes.

    Every byte of the range is covered exactly once; a 0-byte range has no parts.

    Example:
        >>> [(p.first, p.last) for p in plan_parts(10, 4)]
        [(0, 3), (4, 7), (8, 9)]
    """
    if part_size < 1:
        raise ValueError("part_size must be positive")
    if not 0 <= start <= size:
        raise ValueError("start must be within the object")
    return [
        Part(index, first, min(first + part_size, size) - 1)
        for index, first in enumerate(range(start, size, part_size))
    ]


def choose_concurrency(parts: int, requested: int | None, max_streams: int) -> int:
    """Parts in flight for one object: never more than there are parts or than
    the memory budget admits, and at least one.

    Example:
        >>> choose_concurrency(parts=3, requested=None, max_streams=85)
        3
    """
    wanted = requested or DEFAULT_CONCURRENCY
    return max(1, min(wanted, parts, max_streams))
