"""Pure decisions about pages: range parsing, split plans, part names.

Nothing here opens a file. Pages are numbered from 1, as a reader of the
document counts them; ranges are inclusive (``"1-100"`` is a hundred pages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import ConfigError, PageRangeError

#: The default size of a split part.
DEFAULT_PAGES_PER_PART = 50

_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d*)\s*)?")


@dataclass(frozen=True)
class PartPlan:
    """One part of a split: pages ``first`` to ``last`` (from 1, inclusive) into ``name``."""

    first: int
    last: int
    name: str

    @property
    def pages(self) -> int:
        return self.last - self.first + 1


def parse_ranges(text: str, pages: int) -> list[tuple[int, int]]:
    """The ranges of ``text`` (``"1-100,101-250"``, ``"7"``, ``"300-"`` to the
    end) in a document of ``pages`` pages.

    Raises:
        PageRangeError: a malformed range, an empty one (``"5-3"``) or one
            outside the document.

    Example:
        >>> parse_ranges("1-2, 4, 6-", 7)
        [(1, 2), (4, 4), (6, 7)]
    """
    ranges = []
    for piece in text.split(","):
        match = _RANGE.fullmatch(piece)
        if match is None:
            raise PageRangeError(
                f"bad page range {piece.strip()!r} in {text!r} (e.g. 1-100,101-250)"
            )
        first = int(match[1])
        # "7" is page 7, "7-12" pages 7 to 12, "7-" page 7 to the end.
        last = first if match[2] is None else int(match[2]) if match[2] else pages
        if first < 1:
            raise PageRangeError(f"bad page range {piece.strip()!r}: pages count from 1")
        if last < first:
            raise PageRangeError(f"empty page range {piece.strip()!r}: it ends before it starts")
        if last > pages:
            raise PageRangeError(
                f"page range {piece.strip()!r} is outside the document ({pages} pages)"
            )
        ranges.append((first, last))
    return ranges


def fixed_ranges(pages: int, pages_per_part: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``pages_per_part`` pages (the last one shorter).

    Example:
        >>> fixed_ranges(120, 50)
        [(1, 50), (51, 100), (101, 120)]
    """
    if pages_per_part < 1:
        raise ConfigError(f"pages_per_part must be at least 1, got {pages_per_part}")
    return [
        (first, min(first + pages_per_part - 1, pages))
        for first in range(1, pages + 1, pages_per_part)
    ]


def part_name(stem: str, first: int, last: int, pages: int) -> str:
    """``<stem>.p0001-0050.pdf``: zero-padded to 4 digits, or to the page
    count's width if it has more, so the names sort in page order.

    Example:
        >>> part_name("contract", 1, 50, 2300)
        'contract.p0001-0050.pdf'
    """
    width = max(4, len(str(pages)))
    return f"{stem}.p{first:0{width}d}-{last:0{width}d}.pdf"


def check_split_options(pages_per_part: int | None, ranges: str | None) -> None:
    """Refuse contradictory or impossible options before anything is downloaded."""
    if ranges is not None and pages_per_part is not None:
        raise ConfigError("give either pages_per_part or ranges, not both")
    if pages_per_part is not None and pages_per_part < 1:
        raise ConfigError(f"pages_per_part must be at least 1, got {pages_per_part}")
    if ranges is not None and not ranges.strip():
        raise PageRangeError("no page range given")


def plan_split(
    stem: str, pages: int, *, pages_per_part: int | None = None, ranges: str | None = None
) -> list[PartPlan]:
    """The parts of a split of a ``pages``-page document named ``stem``.

    Example:
        >>> [p.name for p in plan_split("a", 120, pages_per_part=50)]
        ['a.p0001-0050.pdf', 'a.p0051-0100.pdf', 'a.p0101-0120.pdf']
    """
    check_split_options(pages_per_part, ranges)
    if ranges is not None:
        spans = parse_ranges(ranges, pages)
    else:
        spans = fixed_ranges(pages, pages_per_part or DEFAULT_PAGES_PER_PART)
    parts = [PartPlan(first, last, part_name(stem, first, last, pages)) for first, last in spans]
    names = [part.name for part in parts]
    if len(set(names)) != len(names):
        raise PageRangeError(f"page ranges {ranges!r} name the same part twice")
    return parts


def select_pages(pages: str | list[int] | range | None, count: int) -> list[int]:
    """The page numbers (from 1) that ``pages`` selects: all of them for None,
    a range string as :func:`parse_ranges` reads, or page numbers.

    Example:
        >>> select_pages("2-3", 5), select_pages(None, 2)
        ([2, 3], [1, 2])
    """
    if pages is None:
        return list(range(1, count + 1))
    if isinstance(pages, str):
        return [
            page for first, last in parse_ranges(pages, count) for page in range(first, last + 1)
        ]
    selected = list(pages)
    outside = [page for page in selected if not 1 <= page <= count]
    if outside:
        raise PageRangeError(f"page {outside[0]} is outside the document ({count} pages)")
    return selected
