"""``s3pull.clean``: what crashed downloads left, removed on demand (the CLI's
``s3pull clean`` is tested through the command in functional/test_resume.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import s3pull
from s3pull.sinks import STAGING_PREFIX, StagingDirectory, TempFile

OURS = (
    ".a.bin.s3pull-0123456789ab.part",
    ".a.bin.s3pull-0123456789ab.journal",
    "nested/dir/.b.s3pull-abcdefabcdef.part",
    "nested/.c.s3pull-abcdefabcdef.journal.new",
)
THEIRS = ("a.bin", "notes.part", ".hidden.journal", ".x.s3pull-short.part")


def _plant(root: Path, names: tuple[str, ...]) -> list[Path]:
    paths = [root / name for name in names]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return paths


def test_clean_removes_only_s3pull_files_in_the_whole_tree(tmp_path: Path) -> None:
    ours, theirs = _plant(tmp_path, OURS), _plant(tmp_path, THEIRS)
    assert sorted(s3pull.clean(tmp_path, dry_run=True)) == sorted(ours)
    assert all(path.exists() for path in ours)

    assert sorted(s3pull.clean(str(tmp_path))) == sorted(ours)
    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in theirs)
    assert s3pull.clean(tmp_path) == []


def test_clean_keeps_recent_files_and_those_a_live_download_holds(tmp_path: Path) -> None:
    (old,) = _plant(tmp_path, OURS[:1])
    os.utime(old, (1e9, 1e9))
    (recent,) = _plant(tmp_path, OURS[2:3])
    with TempFile(tmp_path / "live.bin", 3) as live:
        assert live.path.exists()
        assert s3pull.clean(tmp_path, older_than=3600) == [old]
        assert s3pull.clean(tmp_path) == [recent]
        assert live.path.exists()


def test_clean_does_not_follow_a_link_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (theirs,) = _plant(outside, OURS[:1])
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "link").symlink_to(outside, target_is_directory=True)
    (inside / OURS[1]).symlink_to(theirs)
    assert s3pull.clean(inside) == []
    assert theirs.exists()


@pytest.mark.parametrize("older_than", [-1.0, float("nan")])
def test_clean_refuses_a_negative_age(tmp_path: Path, older_than: float) -> None:
    with pytest.raises(s3pull.ConfigError, match="older_than"):
        s3pull.clean(tmp_path, older_than=older_than)


def test_clean_refuses_what_is_not_a_directory(tmp_path: Path) -> None:
    (a_file,) = _plant(tmp_path, THEIRS[:1])
    for path in (tmp_path / "missing", a_file):
        with pytest.raises(s3pull.ConfigError, match="not a directory"):
            s3pull.clean(path)


def test_clean_removes_a_dead_splits_staging_directory_but_not_a_live_one(
    tmp_path: Path,
) -> None:
    dead = tmp_path / "parts" / f"{STAGING_PREFIX}abc123"
    _plant(dead, ("doc.p0001-0050.pdf", ".doc.p0051-0100.pdf.s3pull-0123456789ab.part"))
    (mine,) = _plant(tmp_path, (f"{STAGING_PREFIX}not-a-directory",))
    with StagingDirectory(tmp_path / "parts") as live:
        _plant(live.path, ("doc.p0001-0050.pdf",))
        assert s3pull.clean(tmp_path, dry_run=True) == [dead]
        assert dead.exists()
        assert s3pull.clean(tmp_path) == [dead]
        assert not dead.exists() and live.path.exists() and mine.exists()
    assert not live.path.exists()  # its owner removes it
    assert s3pull.clean(tmp_path) == []
