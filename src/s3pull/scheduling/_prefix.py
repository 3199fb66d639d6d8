"""The items of a prefix download: its listing, filtered, mapped to local paths.

``download_prefix`` is a batch (``_batch``) over these items: the listing is
streamed page by page (``list_objects``), each key is kept or dropped by the
include/exclude rules, matched against the part of the key below the
prefix's last ``/``, and given its path under the destination
(``BatchItems.keyed``: keys that would escape it, or clash with another
key's path, are refused there).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence

from .._source import S3Source, parse_prefix
from ..planning import KeyFilter, key_base, local_destination
from ..transport import Transport
from ._batch import BatchItem, BatchItems, list_objects
from ._download import Downloader


def prefix_items(
    transport: Transport,
    downloader: Downloader,
    source: str,
    destination: str | os.PathLike[str],
    filters: Sequence[tuple[str, str]] = (),
) -> AsyncIterator[BatchItem]:
    """The batch items of every object under the prefix ``source`` that the
    ``filters`` keep, landing under ``destination``.

    The prefix, the rules and the destination are checked now, before any
    request; the listing starts when the items are first asked for.
    """
    prefix = parse_prefix(source)
    wanted = KeyFilter(filters)
    base = key_base(prefix.key)
    maker = BatchItems(local_destination(os.fspath(destination)), base=base)

    async def items() -> AsyncIterator[BatchItem]:
        listing = list_objects(transport, downloader.retrier, prefix.bucket, prefix.key)
        async for listed in listing:
            if wanted.wants(listed.key[len(base) :]):
                item = maker.keyed(S3Source(prefix.bucket, listed.key), listed)
                if item is not None:
                    yield item

    return items()
