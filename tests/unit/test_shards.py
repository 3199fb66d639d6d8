"""Shard planning: every item in exactly one shard, in order, within bounds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull.planning._shards import Shard, Sharder, ShardItem, cut

sizes = st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 31))


@st.composite
def streams(draw: st.DrawFn) -> list[ShardItem]:
    drawn = draw(st.lists(sizes, max_size=300))
    return [
        ShardItem(i, f"/out/{i}", bucket="b", key=f"k/{i}", size=s) for i, s in enumerate(drawn)
    ]


@given(
    items=streams(),
    max_items=st.integers(min_value=1, max_value=50),
    max_bytes=st.integers(min_value=1, max_value=1 << 30),
    flushes=st.sets(st.integers(min_value=0, max_value=300)),
)
def test_every_item_in_exactly_one_shard_in_order_within_bounds(
    items: list[ShardItem], max_items: int, max_bytes: int, flushes: set[int]
) -> None:
    sharder = Sharder(max_items=max_items, max_bytes=max_bytes)
    shards: list[Shard] = []
    for index, item in enumerate(items):
        if index in flushes:  # the stream paused while a worker waited
            shards += sharder.flush()
        shards += sharder.add(item)
        assert sharder.pending < max_items or sharder.pending == 0
    shards += sharder.flush()
    assert sharder.pending == 0

    ids = [item.id for shard in shards for item in shard.items]
    assert sorted(ids) == [item.id for item in items]  # each exactly once
    for shard in shards:
        assert shard.items, "no empty shard"
        assert len(shard.items) <= max_items
        shard_ids = [item.id for item in shard.items]
        assert shard_ids == sorted(shard_ids)  # the batch's order, kept
        if len(shard.items) > 1:
            assert shard.bytes <= max_bytes
    # Only a large item is ever out of the stream's order, and only alone.
    small = [i for i in ids if (items[i].size or 0) <= max_bytes]
    assert small == sorted(small)
    for shard in shards:
        if any((item.size or 0) > max_bytes for item in shard.items):
            assert len(shard.items) == 1


@given(items=streams())
def test_cut_matches_the_incremental_sharder(items: list[ShardItem]) -> None:
    sharder = Sharder(max_items=7, max_bytes=1 << 28)
    incremental = [shard for item in items for shard in sharder.add(item)] + sharder.flush()
    assert list(cut(items, max_items=7, max_bytes=1 << 28)) == incremental


def test_large_objects_are_spread_one_per_shard() -> None:
    big = 100 << 20
    items = [ShardItem(i, f"/o/{i}", size=big if i % 3 == 0 else 1000) for i in range(9)]
    shards = list(cut(items, max_items=10, max_bytes=64 << 20))
    assert [[item.id for item in shard.items] for shard in shards] == [
        [0],
        [3],
        [6],
        [1, 2, 4, 5, 7, 8],
    ]


item_fields = st.builds(
    ShardItem,
    id=st.integers(min_value=0, max_value=10**12),
    path=st.text(min_size=1),
    bucket=st.one_of(st.none(), st.text()),
    key=st.one_of(st.none(), st.text()),
    version_id=st.one_of(st.none(), st.text()),
    url=st.one_of(st.none(), st.text()),
    root=st.one_of(st.none(), st.text()),
    size=sizes,
    etag=st.one_of(st.none(), st.text()),
    last_modified=st.one_of(st.none(), st.datetimes().map(lambda d: d.isoformat())),
    storage_class=st.one_of(st.none(), st.text()),
    directory=st.booleans(),
)


@given(st.lists(item_fields, max_size=20))
def test_json_round_trip(items: list[ShardItem]) -> None:
    shard = Shard(tuple(items))
    text = json.dumps(shard.to_json())
    assert Shard.from_json(json.loads(text)) == shard


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Sharder(max_items=0)


def test_a_presigned_url_is_not_in_the_repr() -> None:
    item = ShardItem(1, "/o/x", url="https://h/x?X-Amz-Signature=secret")
    assert "secret" not in repr(item)
