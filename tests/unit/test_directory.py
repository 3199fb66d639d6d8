"""Directory: a download's files are named in an open directory, reached
through no symbolic link below a batch's destination."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull import LocalError, UnsafePathError
from s3pull.sinks import Directory, Identity, Journal, TempFile, journal_name, remove_stale


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A directory outside the destination; nothing may land in it."""
    path = tmp_path / "outside"
    path.mkdir()
    yield path
    assert sorted(os.listdir(path)) == []


def test_operations_stay_in_the_directory_that_was_opened(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "dest"
    with Directory.open(root / "sub", root=root) as directory:
        # Swapped for a link to elsewhere while the download runs.
        (root / "sub").rename(root / "moved")
        (root / "sub").symlink_to(outside)
        identity = Identity("s3://b/sub/f", '"e"', None, 3, 1, None)
        with TempFile(root / "sub" / "f", 3, directory=directory) as file:
            journal = Journal(directory, journal_name(file.name), identity)
            journal._write(file.fd, {0: None})
            assert sorted(os.listdir(root / "moved")) == sorted([file.name, journal.name])
            journal.remove()
            file.pwrite(b"abc", 0)
            file.commit()
    assert (root / "moved" / "f").read_bytes() == b"abc"
    assert sorted(os.listdir(root / "moved")) == ["f"]


@pytest.mark.parametrize("create", [True, False])
def test_a_link_below_the_root_is_refused(tmp_path: Path, outside: Path, create: bool) -> None:
    root = tmp_path / "dest"
    (root / "a").mkdir(parents=True)
    (root / "a" / "link").symlink_to(outside)
    before = open_fds()
    with pytest.raises(UnsafePathError) as caught:
        Directory.open(root / "a" / "link" / "b" / "c", root=root, create=create)
    assert str(caught.value) == (
        f"{root / 'a' / 'link'} is a symbolic link inside the destination: not followed"
    )
    assert open_fds() == before


def test_a_link_to_a_file_is_refused_too(tmp_path: Path) -> None:
    root = tmp_path / "dest"
    root.mkdir()
    (tmp_path / "file").write_bytes(b"x")
    (root / "f").symlink_to(tmp_path / "file")
    with pytest.raises(UnsafePathError):
        Directory.open(root / "f", root=root)


def test_the_root_and_a_named_files_directory_may_be_links(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with Directory.open(link / "x" / "y", root=link) as directory:
        assert directory.path == link / "x" / "y"
    assert (real / "x" / "y").is_dir()
    with Directory.open(link / "x") as directory:  # no root: the caller's own path
        assert directory.names() == ["y"]


@pytest.mark.usefixtures("restore_umask")
def test_missing_directories_are_made_with_the_umask(tmp_path: Path) -> None:
    os.umask(0o027)
    with pytest.raises(FileNotFoundError):
        Directory.open(tmp_path / "a" / "b", root=tmp_path, create=False)
    assert not (tmp_path / "a").exists()
    with Directory.open(tmp_path / "a" / "b", root=tmp_path):
        pass
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o750


@pytest.fixture
def restore_umask() -> Iterator[None]:
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def test_a_file_in_the_way_is_a_local_error(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"")
    before = open_fds()
    with pytest.raises(LocalError, match=r"cannot open the directory .*/a/b: Not a directory"):
        Directory.open(tmp_path / "a" / "b", root=tmp_path)
    with pytest.raises(LocalError, match="Not a directory"):
        Directory.open(tmp_path / "a" / "b")
    assert open_fds() == before


def test_stale_files_are_not_cleaned_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    stale = outside / ".a.s3pull-0123456789ab.part"
    stale.write_bytes(b"")
    os.utime(stale, (0, 0))
    root = tmp_path / "dest"
    root.mkdir()
    (root / "link").symlink_to(outside)
    remove_stale(root / "link", 0, root=root, now=1e9)
    assert stale.exists()
    remove_stale(outside, 0, root=None, now=1e9)  # its own directory: cleaned
    assert not stale.exists()
