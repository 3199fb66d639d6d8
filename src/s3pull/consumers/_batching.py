"""Parsed items in batches, for the hop from a parsing thread to the loop.

Handing items over one by one would cost one thread hop each; so parsers
over a stream also offer their items in lists, cut every
:data:`BATCH_ITEMS` items or every :data:`BATCH_CHARS` characters of input
(a batch of long lines must stay small too: the queue that carries batches
is charged to the memory budget, see ``scheduling._consume``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: A batch is sent once it has this many items ...
BATCH_ITEMS = 256
#: ... or its items came from this many characters of text.
BATCH_CHARS = 32 * 1024


class CountingLines:
    """An iterator over text lines that counts their characters (for batching)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.chars += len(line)
            yield line


def batched(items: Iterable[T], counter: CountingLines | None = None) -> Iterator[list[T]]:
    """Group ``items`` into lists of at most BATCH_ITEMS items, also cut every
    BATCH_CHARS characters of input when ``counter`` counts them."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH_ITEMS or (counter is not None and counter.chars >= BATCH_CHARS):
            yield batch
            batch = []
            if counter is not None:
                counter.chars = 0
    if batch:
        yield batch
