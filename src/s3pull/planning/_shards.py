"""Shards: a batch's items cut into bounded lists that can run anywhere.

A batch (a prefix listing, a key list, an inventory) is a stream of items,
possibly millions long. To spread it over worker processes (or Celery
workers) it is cut into **shards**: lists of items bounded both by count and
by bytes, each plain JSON, so a shard can cross a pipe or a broker and be run
by ``download_many`` wherever it lands.

The cut
-------
Items arrive one by one and :meth:`Sharder.add` hands back each shard as it
fills: the stream is never held whole. A shard closes when one more item
would pass ``max_items`` or ``max_bytes``. An item larger than ``max_bytes``
travels alone, and its arrival does not close the shard being filled: big
objects are spread one per shard, so no worker is handed all of them while
the others idle, and small objects keep their dense shards. An item of
unknown size (a key from a list, with no listing) counts towards
``max_items`` only. :meth:`Sharder.flush` closes the shard being filled,
whatever its size: when the stream ends, or when it pauses while a worker
is waiting (a slow listing must not leave workers idle).

Items keep their order within a shard, and each item is in exactly one
shard. An item's ``id`` (given by the caller, unique within the batch) ties
the outcomes that come back to the items that went out, so the items a dead
worker never finished can be handed to another one.

An item is planned before it is cut: its destination path is decided, and
refused or clashing keys are reported, by the one process that sees the
whole batch. A worker therefore never decides a path; it only writes the
path it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

#: Default bounds: small enough that a batch of a few hundred objects is spread
#: over every worker, large enough that one message per shard is negligible
#: next to its downloads.
SHARD_ITEMS = 100
SHARD_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class ShardItem:
    """One planned object of a shard: where it comes from and where it lands.

    Attributes:
        id: the item's number in its batch (unique within the batch).
        path: the destination file (or directory, for a marker).
        bucket: the S3 bucket (None for an HTTP URL).
        key: the S3 key (None for an HTTP URL).
        version_id: the S3 version to download, if pinned.
        url: the HTTP(S) URL (None for S3); it may hold a presigned signature.
        root: the batch's destination directory the path is inside, if any.
        size: the size a listing or inventory gave, if known.
        etag: the ETag it gave, quotes included.
        last_modified: when it said the object was written (ISO 8601).
        storage_class: the storage class it gave.
        directory: a directory-marker key: create ``path`` as a directory.
    """

    id: int
    path: str
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    url: str | None = field(default=None, repr=False)
    root: str | None = None
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    storage_class: str | None = None
    directory: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON form: only the fields that are set, to keep shards small."""
        data: dict[str, Any] = {"id": self.id, "path": self.path}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None and value is not False:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardItem:
        """The inverse of :meth:`to_json`."""
        return cls(**data)


_OPTIONAL = tuple(f.name for f in fields(ShardItem) if f.name not in ("id", "path"))


@dataclass(frozen=True, slots=True)
class Shard:
    """A bounded list of planned items, run as one ``download_many``.

    Attributes:
        items: the items, in the order the batch gave them.
    """

    items: tuple[ShardItem, ...]

    @property
    def bytes(self) -> int:
        """The known sizes, summed."""
        return sum(item.size or 0 for item in self.items)

    def to_json(self) -> dict[str, Any]:
        """The JSON form: ``{"items": [...]}``."""
        return {"items": [item.to_json() for item in self.items]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shard:
        """The inverse of :meth:`to_json`."""
        return cls(tuple(ShardItem.from_json(item) for item in data["items"]))


class Sharder:
    """Cuts a stream of items into shards; see the module docstring.

    Args:
        max_items: the most items in a shard (100).
        max_bytes: the most known bytes in a shard, unless one item alone is
            larger (64 MiB).

    Example:
        >>> sharder = Sharder(max_items=2)
        >>> [len(s.items) for i in range(3) for s in sharder.add(ShardItem(i, f"/d/{i}"))]
        [2]
        >>> [len(s.items) for s in sharder.flush()]
        [1]
    """

    def __init__(self, *, max_items: int = SHARD_ITEMS, max_bytes: int = SHARD_BYTES) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("a shard holds at least one item and one byte")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: list[ShardItem] = []
        self._bytes = 0

    @property
    def pending(self) -> int:
        """Items waiting in the shard being filled."""
        return len(self._items)

    def add(self, item: ShardItem) -> list[Shard]:
        """Take ``item``; return the shards it completed (zero, one or two)."""
        size = item.size or 0
        if size > self.max_bytes:
            return [Shard((item,))]
        done = []
        if len(self._items) >= self.max_items or self._bytes + size > self.max_bytes:
            done = self.flush()
        self._items.append(item)
        self._bytes += size
        if len(self._items) >= self.max_items:
            done += self.flush()
        return done

    def flush(self) -> list[Shard]:
        """Close the shard being filled, if it holds anything."""
        if not self._items:
            return []
        shard = Shard(tuple(self._items))
        self._items = []
        self._bytes = 0
        return [shard]


def cut(
    items: Iterable[ShardItem], *, max_items: int = SHARD_ITEMS, max_bytes: int = SHARD_BYTES
) -> Iterator[Shard]:
    """Every shard of ``items``, as :class:`Sharder` cuts them.

    Example:
        >>> items = [ShardItem(i, f"/d/{i}", size=40 << 20) for i in range(3)]
        >>> [[item.id for item in shard.items] for shard in cut(items)]
        [[0], [1], [2]]
    """
    sharder = Sharder(max_items=max_items, max_bytes=max_bytes)
    for item in items:
        yield from sharder.add(item)
    yield from sharder.flush()
