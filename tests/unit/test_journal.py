"""The crash-resume journal, the temp-file lock and the stale-file finder."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from s3pull.sinks import (
    Directory,
    Identity,
    Journal,
    TempFile,
    find_resumable,
    is_own_file,
    journal_name,
    stale_files,
    temp_prefix,
)
from s3pull.sinks._journal import read_journal

IDENTITY = Identity(
    source="s3://bucket/big.bin",
    etag='"abc-3"',
    version_id=None,
    size=12,
    part_size=4,
    checksum="CRC32",
)


async def _journal_with(tmp_path: Path, parts: dict[int, int | None]) -> TempFile:
    """A temp file of ``big.bin`` with a written journal of ``parts``, as a crash leaves it."""
    sink = TempFile(tmp_path / "big.bin", IDENTITY.size)
    sink.__enter__()
    journal = Journal(sink.directory, journal_name(sink.name), IDENTITY, interval=0.0)
    for index, crc in parts.items():
        journal.record(index, crc, sink.fd)
    # the write happens in a worker thread: poll the file it produces
    while journal.parts and read_journal(journal.name, sink.directory) is None:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await journal.close()
    return sink


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Directory]:
    """``tmp_path``, open as a download's directory."""
    with Directory.open(tmp_path) as directory:
        yield directory


def _crash(sink: TempFile) -> None:
    """What kill -9 does to a temp file: the fd (and its lock) go, the file stays."""
    os.close(sink.fd)
    sink.fd = -1


async def test_journal_records_parts_and_crcs_durably(tmp_path: Path) -> None:
    sink = await _journal_with(tmp_path, {0: 123, 2: 456})
    recorded = read_journal(journal_name(sink.name), sink.directory)
    assert recorded == (IDENTITY, {0: 123, 2: 456})
    _crash(sink)


async def test_a_crashed_run_is_found_and_reopened(tmp_path: Path, opened: Directory) -> None:
    sink = await _journal_with(tmp_path, {1: 7})
    _crash(sink)
    found = find_resumable(temp_prefix(sink.destination), opened, IDENTITY)
    assert found is not None
    assert found.part_name == sink.name
    assert found.parts == {1: 7}
    with TempFile(sink.destination, IDENTITY.size, resume=found.part_name) as again:
        assert again.resumed and again.path == sink.path


async def test_a_live_download_is_never_resumed_by_another(
    tmp_path: Path, opened: Directory
) -> None:
    sink = await _journal_with(tmp_path, {1: 7})  # still open: its lock is held
    assert find_resumable(temp_prefix(sink.destination), opened, IDENTITY) is None
    assert sink.path.exists()  # and not removed either
    _crash(sink)


async def test_a_changed_object_removes_the_old_files(tmp_path: Path, opened: Directory) -> None:
    sink = await _journal_with(tmp_path, {0: 1})
    _crash(sink)
    changed = replace(IDENTITY, etag='"new-3"')
    assert find_resumable(temp_prefix(sink.destination), opened, changed) is None
    assert sorted(os.listdir(tmp_path)) == []


async def test_another_destinations_journal_is_left_alone(
    tmp_path: Path, opened: Directory
) -> None:
    sink = await _journal_with(tmp_path, {0: 1})
    _crash(sink)
    other = replace(IDENTITY, source="s3://bucket/other")
    assert find_resumable(temp_prefix(sink.destination), opened, other) is None
    assert sink.path.exists() and (tmp_path / journal_name(sink.name)).exists()


def test_a_resumed_file_of_the_wrong_size_is_not_reused(tmp_path: Path) -> None:
    with TempFile(tmp_path / "a.bin", 10) as first:
        planted = first.name
        os.link(first.path, tmp_path / "keep")  # survive the discard
    os.rename(tmp_path / "keep", tmp_path / planted)
    with TempFile(tmp_path / "a.bin", 99, resume=planted) as sink:
        assert not sink.resumed
        assert sink.name != planted


def test_a_symlink_is_never_resumed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"x" * 8)
    planted = tmp_path / f"{temp_prefix(tmp_path / 'a.bin')}0123456789ab.part"
    planted.symlink_to(victim)
    with TempFile(tmp_path / "a.bin", 8, resume=planted.name) as sink:
        assert not sink.resumed
        sink.pwrite(b"attacker", 0)
    assert victim.read_bytes() == b"x" * 8


@pytest.mark.parametrize(
    ("name", "own"),
    [
        (".a.bin.s3pull-0123456789ab.part", True),
        (".a.bin.s3pull-0123456789ab.journal", True),
        (".a.bin.s3pull-0123456789ab.journal.new", True),
        (".x.s3pull-y.s3pull-0123456789ab.part", True),
        ("a.bin.s3pull-0123456789ab.part", False),  # not hidden: not ours
        (".a.bin.s3pull-0123456789AB.part", False),
        (".a.bin.s3pull-0123456789ab.partial", False),
        (".a.bin.s3pull-123.part", False),
        ("report.part", False),
    ],
)
def test_only_own_files_are_recognised(name: str, own: bool) -> None:
    assert is_own_file(name) is own


def _touch(path: Path, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_stale_files_by_age_and_ownership(tmp_path: Path) -> None:
    old = _touch(tmp_path / ".a.s3pull-0123456789ab.part", 7200)
    old_journal = _touch(tmp_path / ".a.s3pull-0123456789ab.journal", 7200)
    _touch(tmp_path / ".b.s3pull-0123456789ab.part", 60)  # recent
    _touch(tmp_path / "user-file.part", 7200)  # not ours
    nested = _touch(tmp_path / "sub" / ".c.s3pull-0123456789ab.part", 7200)
    now = time.time()
    assert sorted(stale_files(tmp_path, 3600, recursive=False, now=now)) == sorted(
        [old, old_journal]
    )
    assert nested in stale_files(tmp_path, 3600, recursive=True, now=now)


def test_a_locked_temp_file_and_its_journal_are_not_stale(tmp_path: Path) -> None:
    with TempFile(tmp_path / "a.bin", 4) as sink:
        journal = _touch(tmp_path / journal_name(sink.name), 7200)
        os.utime(sink.path, (0, 0))
        assert stale_files(tmp_path, 0, recursive=False, now=time.time()) == []
    assert stale_files(tmp_path, 0, recursive=False, now=time.time()) == [journal]


def test_a_symlink_with_our_name_is_not_reported(tmp_path: Path) -> None:
    (tmp_path / ".a.s3pull-0123456789ab.part").symlink_to(tmp_path / "elsewhere")
    assert stale_files(tmp_path, 0, recursive=False, now=time.time()) == []
