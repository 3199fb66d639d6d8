"""Checks for parts downloaded in any order: CRC combination and the ordered hasher."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import random
import zlib
from pathlib import Path

import pytest
from awscrt import checksums as crt
from hypothesis import given
from hypothesis import strategies as st

from s3pull import ObjectInfo
from s3pull._checksums import (
    _CHUNK,
    Check,
    OrderedHasher,
    RunningCrc,
    choose_check,
    combine_crcs,
    digest_text,
)

REFERENCE = {
    "CRC32": (lambda data: zlib.crc32(data), 4),
    "CRC32C": (lambda data: crt.crc32c(data), 4),
    "CRC64NVME": (lambda data: crt.crc64nvme(data), 8),
}


def reference(algorithm: str, data: bytes) -> str:
    function, width = REFERENCE[algorithm]
    return base64.b64encode(function(data).to_bytes(width, "big")).decode()


@pytest.mark.parametrize(
    ("algorithm", "check_value"),
    [("CRC32", 0xCBF43926), ("CRC32C", 0xE3069283), ("CRC64NVME", 0xAE8B14860A799888)],
)
def test_running_crc_check_values(algorithm: str, check_value: int) -> None:
    # The published "check" value of each CRC: the CRC of b"123456789".
    crc = RunningCrc(algorithm)
    crc.update(b"1234")
    crc.update(memoryview(b"56789"))
    assert crc.value == check_value
    assert crc.length == 9


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
@given(
    data=st.binary(max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=12),
    feeds=st.integers(min_value=1, max_value=4),
)
def test_combined_part_crcs_equal_the_crc_of_the_concatenation(
    algorithm: str, data: bytes, cuts: list[int], feeds: int
) -> None:
    bounds = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    parts = []
    for first, end in itertools.pairwise(bounds):
        crc = RunningCrc(algorithm)
        piece = data[first:end]
        step = max(1, len(piece) // feeds)
        for offset in range(0, len(piece), step):  # a part's body arrives in several reads
            crc.update(piece[offset : offset + step])
        parts.append(crc)
    assert combine_crcs(algorithm, parts) == reference(algorithm, data)


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
def test_combine_large_parts_and_empty_parts(algorithm: str) -> None:
    data = random.Random(1).randbytes(3 * _CHUNK + 17)
    pieces = [data[: _CHUNK + 5], b"", data[_CHUNK + 5 : 2 * _CHUNK], data[2 * _CHUNK :], b""]
    parts = []
    for piece in pieces:
        crc = RunningCrc(algorithm)
        crc.update(piece)
        parts.append(crc)
    assert combine_crcs(algorithm, parts) == reference(algorithm, data)
    assert combine_crcs(algorithm, []) == reference(algorithm, b"")


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
def test_parts_combined_out_of_order_do_not_match(algorithm: str) -> None:
    a, b = RunningCrc(algorithm), RunningCrc(algorithm)
    a.update(b"first part ")
    b.update(b"second part")
    assert combine_crcs(algorithm, [b, a]) != reference(algorithm, b"first part second part")


# choose_check / digest_text -------------------------------------------------------------

MD5_HEX = hashlib.md5(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"checksums": {"CRC64NVME": "x8Y="}}, Check("CRC64NVME", "x8Y=")),
        ({"checksums": {"SHA256": "s="}, "etag": f'"{MD5_HEX}"'}, Check("SHA256", "s=")),
        (
            {"checksums": {"CRC32C": "c="}, "checksum_type": "COMPOSITE", "etag": f'"{MD5_HEX}"'},
            Check("MD5", MD5_HEX),
        ),
        ({"checksums": {"CRC32": "c=-4"}, "etag": f'"{MD5_HEX}"'}, Check("MD5", MD5_HEX)),
        ({"checksums": {"CRC32": "c=-4"}}, None),
        ({"etag": f'"{MD5_HEX}-2"'}, None),
        ({"etag": f'"{MD5_HEX}"', "encryption": "aws:kms"}, None),
        ({"checksums": {"FUTURE64": "x="}, "etag": f'"{MD5_HEX}"'}, Check("MD5", MD5_HEX)),
        ({}, None),
    ],
)
def test_choose_check(kwargs: dict[str, object], expected: Check | None) -> None:
    info = ObjectInfo("s3://b/k", 3, is_s3=True, **kwargs)  # type: ignore[arg-type]
    assert choose_check(info) == expected


def test_no_md5_check_for_non_s3_servers() -> None:
    assert choose_check(ObjectInfo("https://h/k", 3, etag=f'"{MD5_HEX}"')) is None


def test_check_kind() -> None:
    assert Check("CRC32C", "x").is_crc
    assert not Check("SHA256", "x").is_crc
    assert not Check("MD5", "x").is_crc


def test_digest_text_is_hex_for_md5_and_base64_otherwise() -> None:
    md5 = hashlib.md5(b"abc").digest()
    sha = hashlib.sha256(b"abc").digest()
    assert digest_text("MD5", md5) == MD5_HEX == md5.hex()
    assert digest_text("SHA256", sha) == base64.b64encode(sha).decode()


# OrderedHasher --------------------------------------------------------------------------


async def _hash_out_of_order(path: Path, data: bytes, algorithm: str, part: int) -> bytes:
    """Write ``data`` into ``path`` part by part in random order, advancing the
    hasher over the contiguous prefix as it grows (and with stale values)."""
    rng = random.Random(7)
    starts = list(range(0, len(data), part))
    rng.shuffle(starts)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, len(data))
        hasher = OrderedHasher(algorithm, fd, len(data))
        try:
            done: set[int] = set()
            contiguous = 0
            for start in starts:
                os.pwrite(fd, data[start : start + part], start)
                done.add(start)
                while contiguous in done:
                    contiguous += part
                hasher.advance(min(contiguous, len(data)))
                hasher.advance(rng.randrange(0, min(contiguous, len(data)) + 1))  # stale
                await asyncio.sleep(0)
            return await hasher.finish()
        finally:
            hasher.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA1", "SHA256"])
@pytest.mark.parametrize("part", [100_003, _CHUNK + 1])
def test_ordered_hasher_out_of_order_equals_hashlib(
    tmp_path: Path, algorithm: str, part: int
) -> None:
    data = random.Random(part).randbytes(3 * _CHUNK + 12_345)
    digest = asyncio.run(_hash_out_of_order(tmp_path / "f", data, algorithm, part))
    assert digest == hashlib.new(algorithm.lower(), data).digest()


def test_ordered_hasher_empty_file(tmp_path: Path) -> None:
    async def main() -> bytes:
        fd = os.open(tmp_path / "empty", os.O_RDWR | os.O_CREAT, 0o600)
        hasher = OrderedHasher("SHA256", fd, 0)
        try:
            return await hasher.finish()
        finally:
            hasher.close()
            os.close(fd)

    assert asyncio.run(main()) == hashlib.sha256(b"").digest()


def test_ordered_hasher_reads_through_its_own_descriptor(tmp_path: Path) -> None:
    # The sink may close its descriptor before the hasher is done with it.
    data = b"x" * (_CHUNK + 10)

    async def main() -> bytes:
        fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, data)
        hasher = OrderedHasher("MD5", fd, len(data))
        os.close(fd)
        try:
            return await hasher.finish()
        finally:
            hasher.close()

    assert asyncio.run(main()) == hashlib.md5(data).digest()


def test_ordered_hasher_reports_a_short_file(tmp_path: Path) -> None:
    async def main() -> None:
        fd = os.open(tmp_path / "short", os.O_RDWR | os.O_CREAT, 0o600)
        os.write(fd, b"only ten b")
        hasher = OrderedHasher("MD5", fd, 100)
        try:
            await hasher.finish()
        finally:
            hasher.close()
            os.close(fd)

    with pytest.raises(OSError, match="shorter than expected at byte 10"):
        asyncio.run(main())


def test_ordered_hasher_close_is_idempotent_and_releases_the_descriptor(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        hasher = OrderedHasher("MD5", fd, 0)
        duplicate = hasher._fd
        hasher.close()
        hasher.close()
        with pytest.raises(OSError):
            os.fstat(duplicate)
    finally:
        os.close(fd)
