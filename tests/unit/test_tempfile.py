"""TempFile: the atomic sink. Real files in tmp_path; faults injected with monkeypatch."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3pull import DiskFullError, LocalError
from s3pull.sinks import TEMP_MARKER, TEMP_SUFFIX, TempFile, _tempfile, local_error
from s3pull.sinks._tempfile import temp_name


def entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture
def umask() -> Iterator[None]:
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


def test_temp_name_is_next_to_the_destination_and_marked(tmp_path: Path) -> None:
    destination = tmp_path / "out.bin"
    name = temp_name(destination)
    assert re.fullmatch(
        rf"\.out\.bin{re.escape(TEMP_MARKER)}[0-9a-f]{{12}}{re.escape(TEMP_SUFFIX)}", name
    )
    with TempFile(destination, size=1) as sink:
        assert sink.path.parent == tmp_path and sink.path.exists()
    assert len({temp_name(destination) for _ in range(50)}) == 50  # random token


@pytest.mark.parametrize("name", ["a" * 255, "€" * 85, "a" + "€" * 84, "😀" * 63])
def test_temp_name_fits_in_255_bytes(tmp_path: Path, name: str) -> None:
    destination = tmp_path / name
    assert len(os.fsencode(destination.name)) <= 255
    temp = temp_name(destination)
    assert len(os.fsencode(temp)) <= 255
    assert TEMP_MARKER in temp
    temp.encode("utf-8")  # truncation never splits a character
    with TempFile(destination, size=3) as sink:  # and the file system accepts it
        sink.pwrite(b"abc", 0)
        sink.commit()
    assert destination.read_bytes() == b"abc"
    assert entries(tmp_path) == [name]


def test_commit_renames_atomically_and_removes_the_temp(tmp_path: Path) -> None:
    destination = tmp_path / "obj.bin"
    destination.write_bytes(b"old content")
    with TempFile(destination, size=10) as sink:
        assert sink.path.exists()
        assert sink.path.parent == tmp_path
        assert os.fstat(sink.fd).st_size == 10  # preallocated
        assert destination.read_bytes() == b"old content"  # untouched until commit
        sink.pwrite(b"89", 8)  # out of order, at offsets
        sink.pwrite(memoryview(b"0123"), 0)
        sink.pwrite(b"4567", 4)
        sink.commit()
        assert sink.fd == -1
        assert not sink.path.exists()
    assert destination.read_bytes() == b"0123456789"
    assert entries(tmp_path) == ["obj.bin"]


def test_commit_creates_missing_parent_directories(tmp_path: Path) -> None:
    destination = tmp_path / "a" / "b" / "f"
    with TempFile(destination, size=1) as sink:
        sink.pwrite(b"x", 0)
        sink.commit()
    assert destination.read_bytes() == b"x"


def test_empty_object(tmp_path: Path) -> None:
    destination = tmp_path / "empty"
    with TempFile(destination, size=0) as sink:
        sink.commit()
    assert destination.read_bytes() == b""
    assert entries(tmp_path) == ["empty"]


def test_leaving_without_commit_removes_the_temp_and_keeps_the_destination(
    tmp_path: Path,
) -> None:
    destination = tmp_path / "obj.bin"
    destination.write_bytes(b"previous")
    with TempFile(destination, size=5) as sink:
        sink.pwrite(b"new!!", 0)
        temp = sink.path
    assert not temp.exists()
    assert destination.read_bytes() == b"previous"
    assert entries(tmp_path) == ["obj.bin"]


def test_exception_in_the_block_removes_the_temp(tmp_path: Path) -> None:
    destination = tmp_path / "obj.bin"
    with pytest.raises(RuntimeError), TempFile(destination, size=5) as sink:
        sink.pwrite(b"half", 0)
        raise RuntimeError("download failed")
    assert entries(tmp_path) == []
    assert sink.fd == -1


def test_planted_symlink_at_the_temp_path_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    sink = TempFile(tmp_path / "obj.bin", size=8)
    sink.path.symlink_to(victim)
    with pytest.raises(LocalError, match="cannot create a file in"), sink:
        sink.pwrite(b"attacker", 0)
    assert victim.read_bytes() == b"precious"
    assert sink.path.is_symlink()  # not ours: left alone
    assert not (tmp_path / "obj.bin").exists()


def test_planted_dangling_symlink_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    sink = TempFile(tmp_path / "obj.bin", size=8)
    sink.path.symlink_to(target)
    with pytest.raises(LocalError), sink:
        pass
    assert not target.exists()


def test_existing_file_at_the_temp_path_is_never_reused(tmp_path: Path) -> None:
    sink = TempFile(tmp_path / "obj.bin", size=4)
    sink.path.write_bytes(b"theirs")
    with pytest.raises(LocalError), sink:
        pass
    assert sink.path.read_bytes() == b"theirs"


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)])
def test_file_mode_respects_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    os.umask(mask)
    destination = tmp_path / "obj.bin"
    with TempFile(destination, size=1) as sink:
        assert stat.S_IMODE(os.stat(sink.path).st_mode) == mode
        sink.pwrite(b"x", 0)
        sink.commit()
    assert stat.S_IMODE(destination.stat().st_mode) == 0o666 & ~mask == mode


def test_unwritable_directory_is_a_local_error(tmp_path: Path) -> None:
    parent = tmp_path / "file-not-dir"
    parent.write_bytes(b"")
    with pytest.raises(LocalError, match="cannot open the directory"), TempFile(parent / "x", 1):
        pass


def test_preallocation_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tempfile, "fallocate", lambda fd, size: errno.ENOSPC)
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: False)
    with (
        pytest.raises(DiskFullError, match="not enough space for 1000 bytes"),
        TempFile(tmp_path / "big", 1000),
    ):
        pass
    assert entries(tmp_path) == []


def test_a_new_directory_is_checked_for_space_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The free-space check asks about the new file itself, so a directory
    # made for it is on the file system it checks.
    checked: list[int] = []

    def one_mib_free(fd: int) -> os.statvfs_result:
        checked.append(os.fstat(fd).st_ino)
        return os.statvfs_result((4096, 4096, 1 << 20, 256, 256, 0, 0, 0, 0, 255))

    monkeypatch.setattr(os, "fstatvfs", one_mib_free)
    with (
        pytest.raises(DiskFullError, match="the object needs"),
        TempFile(tmp_path / "new" / "f", 2 << 20),
    ):
        pass
    assert entries(tmp_path / "new") == []
    assert len(checked) == 1


def test_preallocation_reserves_the_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: False)
    with TempFile(tmp_path / "f", 4 << 20) as sink:
        status = os.fstat(sink.fd)
        assert status.st_size == 4 << 20
        if status.st_blocks == 0:
            pytest.skip("this file system cannot preallocate")
        assert status.st_blocks * 512 >= 4 << 20


def test_a_file_system_that_cannot_preallocate_gets_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glibc's posix_fallocate would emulate it there, writing a byte into
    # every block of the file (on NFS, FUSE, ext2), on the event loop.
    def emulating(fd: int, offset: int, length: int) -> None:
        raise AssertionError("posix_fallocate called")

    monkeypatch.setattr(os, "posix_fallocate", emulating)
    monkeypatch.setattr(_tempfile, "fallocate", lambda fd, size: errno.EOPNOTSUPP)
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: False)
    with TempFile(tmp_path / "f", 4 << 20) as sink:
        assert os.fstat(sink.fd).st_blocks == 0  # nothing written, nothing reserved
        sink.pwrite(b"abc", 0)
        sink.commit()
    assert (tmp_path / "f").read_bytes() == b"abc"


def test_a_libc_without_fallocate64_uses_fallocate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # musl >= 1.2.4 exports no *64 names.
    class Musl:
        fallocate = _tempfile._libc().fallocate

    monkeypatch.setattr(_tempfile, "_libc", Musl)
    _tempfile._fallocate64.cache_clear()
    try:
        with open(tmp_path / "f", "wb") as file:
            assert _tempfile.fallocate(file.fileno(), 1 << 20) == 0
            assert os.fstat(file.fileno()).st_size == 1 << 20
    finally:
        _tempfile._fallocate64.cache_clear()


def test_fallocate_reports_the_errno() -> None:
    read, write = os.pipe()
    try:
        assert _tempfile.fallocate(write, 100) == errno.ESPIPE  # not a file
    finally:
        os.close(read)
        os.close(write)


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite

    def short(fd: int, data: bytes | memoryview, offset: int) -> int:
        return real_pwrite(fd, bytes(data[:3]), offset)

    with TempFile(tmp_path / "f", 10) as sink:
        monkeypatch.setattr(os, "pwrite", short)
        sink.pwrite(b"abcdefghij", 0)
        monkeypatch.undo()
        sink.commit()
    assert (tmp_path / "f").read_bytes() == b"abcdefghij"


def test_write_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    with (
        pytest.raises(DiskFullError, match="disk full while write"),
        TempFile(tmp_path / "f", 10) as sink,
    ):
        monkeypatch.setattr(os, "pwrite", full)
        sink.pwrite(b"abc", 0)
    monkeypatch.undo()
    assert entries(tmp_path) == []


def test_failed_rename_is_a_local_error_and_cleans_up(tmp_path: Path) -> None:
    destination = tmp_path / "dir"
    with pytest.raises(LocalError, match="cannot finish"), TempFile(destination, 1) as sink:
        # Made meanwhile (a directory is refused up front): the rename fails.
        destination.mkdir()
        (destination / "inside").write_bytes(b"keep")
        sink.pwrite(b"x", 0)
        sink.commit()
    assert entries(tmp_path) == ["dir"]
    assert (destination / "inside").read_bytes() == b"keep"


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
def test_only_a_regular_file_or_a_link_is_renamed_over(tmp_path: Path, kind: str) -> None:
    destination = tmp_path / "dest"
    if kind == "directory":
        destination.mkdir()
    else:
        os.mkfifo(destination)
    with pytest.raises(LocalError, match=f"is a {kind}, not a regular file: not replaced"):
        TempFile(destination, 1).__enter__()
    assert entries(tmp_path) == ["dest"]
    (tmp_path / "link").symlink_to("elsewhere")
    with TempFile(tmp_path / "link", 1) as sink:
        sink.pwrite(b"x", 0)
        sink.commit()
    assert (tmp_path / "link").read_bytes() == b"x"  # the link itself was replaced
    assert not (tmp_path / "link").is_symlink()


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (errno.ENOSPC, DiskFullError),
        (errno.EDQUOT, DiskFullError),
        (errno.EACCES, LocalError),
        (errno.EIO, LocalError),
    ],
)
def test_local_error_translation(code: int, cls: type[LocalError]) -> None:
    error = local_error(OSError(code, os.strerror(code)), "write", "/data/f")
    assert type(error) is cls
    assert "/data/f" in str(error)
    assert os.strerror(code) in str(error)


def test_no_preallocation_on_tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # fallocate on tmpfs zeroes every page before the first byte is fetched.
    def must_not_run(fd: int, size: int) -> int:
        raise AssertionError("preallocated on tmpfs")

    monkeypatch.setattr(_tempfile, "fallocate", must_not_run)
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: True)
    with TempFile(tmp_path / "f", 3) as sink:
        sink.pwrite(b"abc", 0)
        sink.commit()
    assert (tmp_path / "f").read_bytes() == b"abc"


def _mounted_tmpfs() -> bool:
    try:
        return any(
            line.split()[1:3] == ["/dev/shm", "tmpfs"]
            for line in Path("/proc/mounts").read_text().splitlines()
        )
    except OSError:
        return False


@pytest.mark.skipif(not _mounted_tmpfs(), reason="no tmpfs at /dev/shm")
def test_is_tmpfs() -> None:
    fd, name = tempfile.mkstemp(dir="/dev/shm")
    try:
        assert _tempfile.is_tmpfs(fd)
    finally:
        os.close(fd)
        os.unlink(name)


# finish: commit off the event loop ---------------------------------------------------


class _HeldFsync:
    """os.fsync that records its thread and, once armed, blocks until released."""

    def __init__(self) -> None:
        self.real = os.fsync
        self.threads: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, fd: int) -> None:
        self.threads.append(threading.get_ident())
        self.entered.set()
        assert self.release.wait(10), "never released"
        self.real(fd)


@pytest.mark.parametrize(("on_tmpfs", "on_loop_thread"), [(False, False), (True, True)])
async def test_finish_syncs_on_a_worker_thread_unless_on_tmpfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_tmpfs: bool, on_loop_thread: bool
) -> None:
    # On a disk every fsync waits for it; on tmpfs it returns at once and a
    # thread hop would cost more than it saves.
    fsync = _HeldFsync()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: on_tmpfs)
    with TempFile(tmp_path / "f", 3) as sink:
        sink.pwrite(b"abc", 0)
        await sink.finish(mtime=1_000_000.0)
    assert (tmp_path / "f").read_bytes() == b"abc"
    assert (tmp_path / "f").stat().st_mtime == 1_000_000.0
    assert fsync.threads  # the file and its directory
    assert all((t == threading.get_ident()) is on_loop_thread for t in fsync.threads)
    assert entries(tmp_path) == ["f"]


async def test_cancelling_finish_waits_for_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller's "with" removes the temp file when it is left uncommitted:
    # that must never happen while a thread is still fsyncing or renaming it.
    # (The loop runs on meanwhile: this test awaits while the fsync is held.)
    fsync = _HeldFsync()
    fsync.release.clear()
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(_tempfile, "is_tmpfs", lambda fd: False)

    async def download() -> None:
        with TempFile(tmp_path / "f", 3) as sink:
            sink.pwrite(b"abc", 0)
            await sink.finish()

    task = asyncio.create_task(download())
    await asyncio.to_thread(fsync.entered.wait, 10)
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # held by the thread, cancelled or not
    task.cancel()  # a second request changes nothing
    await asyncio.sleep(0)
    assert not task.done()
    fsync.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The commit was under way: the object is complete and nothing else is left.
    assert (tmp_path / "f").read_bytes() == b"abc"
    assert entries(tmp_path) == ["f"]
