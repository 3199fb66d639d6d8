"""The pure page logic of ``s3pull.documents``: ranges, split plans, part names."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import s3pull
from s3pull import ConfigError, PageRangeError
from s3pull.documents import parse_ranges, part_name, plan_split
from s3pull.documents._plan import select_pages


def test_ranges_read_as_a_reader_counts_pages() -> None:
    assert parse_ranges("1-100,101-250", 250) == [(1, 100), (101, 250)]
    assert parse_ranges(" 3 , 5 - 6 ,9-", 10) == [(3, 3), (5, 6), (9, 10)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0-3", "pages count from 1"),
        ("5-3", "empty page range '5-3': it ends before it starts"),
        ("1-11", "outside the document (10 pages)"),
        ("11", "outside the document"),
        ("a-b", "bad page range 'a-b'"),
        ("1,,2", "bad page range ''"),
        ("-3", "bad page range '-3'"),
    ],
)
def test_bad_ranges_are_page_range_errors(text: str, message: str) -> None:
    with pytest.raises(PageRangeError, match=re.escape(message)):
        parse_ranges(text, 10)


def test_part_names_sort_in_page_order_and_widen_for_long_documents() -> None:
    assert part_name("contract", 1, 50, 2300) == "contract.p0001-0050.pdf"
    assert part_name("big", 10001, 12000, 12000) == "big.p10001-12000.pdf"
    assert part_name("big", 1, 50, 12000) == "big.p00001-00050.pdf"


def test_a_plan_by_ranges_keeps_their_order_and_refuses_the_same_part_twice() -> None:
    plan = plan_split("a", 20, ranges="11-20,1-10")
    assert [(p.first, p.last, p.name) for p in plan] == [
        (11, 20, "a.p0011-0020.pdf"),
        (1, 10, "a.p0001-0010.pdf"),
    ]
    with pytest.raises(PageRangeError, match="same part twice"):
        plan_split("a", 20, ranges="1-5,1-5")


def test_split_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="not both"):
        plan_split("a", 10, pages_per_part=5, ranges="1-5")
    with pytest.raises(ConfigError, match="at least 1"):
        plan_split("a", 10, pages_per_part=0)
    with pytest.raises(PageRangeError, match="no page range"):
        plan_split("a", 10, ranges=" ")


@given(pages=st.integers(1, 5000), per_part=st.integers(1, 600))
def test_fixed_parts_cover_every_page_once_in_order(pages: int, per_part: int) -> None:
    plan = plan_split("doc", pages, pages_per_part=per_part)
    covered = [page for part in plan for page in range(part.first, part.last + 1)]
    assert covered == list(range(1, pages + 1))
    assert all(part.pages == per_part for part in plan[:-1])
    assert 1 <= plan[-1].pages <= per_part
    names = [part.name for part in plan]
    assert names == sorted(names)


@given(
    pages=st.integers(1, 3000),
    spans=st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 300)), min_size=1, max_size=8),
)
def test_ranges_inside_the_document_round_trip(pages: int, spans: list[tuple[int, int]]) -> None:
    wanted = [(first, min(first + length, pages)) for first, length in spans if first <= pages]
    if not wanted:
        return
    text = ",".join(f"{first}-{last}" for first, last in wanted)
    assert parse_ranges(text, pages) == wanted


def test_page_selections() -> None:
    assert select_pages(None, 3) == [1, 2, 3]
    assert select_pages("2-3,1", 3) == [2, 3, 1]
    assert select_pages([3, 1], 3) == [3, 1]
    with pytest.raises(PageRangeError, match="page 4 is outside"):
        select_pages([1, 4], 3)


@pytest.mark.parametrize(
    "error",
    [
        s3pull.CorruptDocumentError("x.pdf is truncated", source="s3://b/x.pdf"),
        s3pull.EncryptedDocumentError("x.pdf is encrypted"),
        s3pull.PageRangeError("page 9 is outside"),
        s3pull.EmptyDocumentError("x.pdf has no pages"),
        s3pull.TooLargeError("too big", source="s3://b/m.json"),
    ],
)
def test_document_errors_pickle_and_are_s3pull_errors(error: s3pull.DocumentError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert isinstance(copy, s3pull.DocumentError) and isinstance(copy, s3pull.S3PullError)
