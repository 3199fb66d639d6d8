"""Benchmark data set: generated once, cached under ``bench/.work/``.

Every object is fresh random bytes (no repeated blocks), so a client that
writes a part at the wrong offset cannot produce the right MD5 by accident.
The manifest records size, MD5, CRC64NVME and modification time of every
object; the server serves the MD5 as the ETag and builds listings from it, and
every download is verified against it. Like S3, which stores a full-object
CRC64NVME for every object uploaded without a checksum of its own (since
December 2024), the server answers ``x-amz-checksum-mode: ENABLED`` with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

BUCKET = "bench"
MiB = 1024 * 1024
GiB = 1024 * MiB

# Random data is produced and written in blocks of this size, which keeps the
# generator's own memory small whatever the object size.
_BLOCK = 8 * MiB
_FORMAT_VERSION = 2


@dataclass(frozen=True)
class Layout:
    """Sizes and counts of the data set, scaled by ``--size-scale``."""

    large_size: int
    medium_count: int
    medium_size: int
    small_count: int
    small_size: int
    #: Objects small enough for one GET each but too large to be cheap:
    #: documents, images, Parquet row groups.
    mid_count: int = 0
    mid_size: int = 0
    #: Many tiny objects: start-up no longer dominates, per-object cost does.
    tiny_count: int = 0
    tiny_size: int = 0

    @classmethod
    def scaled(cls, scale: float) -> Layout:
        # The large object and the object counts shrink with the scale; the
        # per-object size of the medium and small sets does not, so the
        # request pattern (16 MiB, 4 MiB and 64 KiB objects) stays the same.
        return cls(
            large_size=max(MiB, int(GiB * scale) // MiB * MiB),
            medium_count=max(4, round(100 * scale)),
            medium_size=16 * MiB,
            small_count=max(50, round(2000 * scale)),
            small_size=64 * 1024,
            mid_count=max(8, round(300 * scale)),
            mid_size=4 * MiB,
            tiny_count=max(100, round(20_000 * scale)),
            tiny_size=16 * 1024,
        )

    @property
    def tag(self) -> str:
        return (
            f"L{self.large_size // MiB}M-m{self.medium_count}x{self.medium_size // MiB}M"
            f"-s{self.small_count}x{self.small_size // 1024}K"
            + (f"-d{self.mid_count}x{self.mid_size // MiB}M" if self.mid_count else "")
            + (f"-t{self.tiny_count}x{self.tiny_size // 1024}K" if self.tiny_count else "")
        )

    def objects(self) -> list[tuple[str, int]]:
        """(key, size) of every object, in S3 listing (byte) order."""
        keys = [("large/object.bin", self.large_size)]
        keys += [(f"medium/{i:04d}.bin", self.medium_size) for i in range(self.medium_count)]
        keys += [(f"small/{i:05d}.bin", self.small_size) for i in range(self.small_count)]
        keys += [(f"mid/{i:04d}.bin", self.mid_size) for i in range(self.mid_count)]
        keys += [(f"tiny/{i:05d}.bin", self.tiny_size) for i in range(self.tiny_count)]
        return sorted(keys, key=lambda item: item[0].encode())


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    md5: str
    last_modified: str  # ISO 8601, as S3 lists it
    crc64nvme: str  # base64, as S3 sends it


@dataclass(frozen=True)
class DataSet:
    root: Path  # served as the nginx root: objects live at root/BUCKET/key
    entries: dict[str, Entry]

    @property
    def manifest_tsv(self) -> Path:
        return self.root / "manifest.tsv"

    def under(self, prefix: str) -> list[Entry]:
        return [e for k, e in self.entries.items() if k.startswith(prefix)]

    def path_of(self, key: str) -> Path:
        return self.root / BUCKET / key


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(_BLOCK, left))
            f.write(block)
            left -= len(block)


def _digests(path: Path) -> tuple[str, str]:
    """(MD5 hex, CRC64NVME base64) of a file."""
    from awscrt import checksums

    md5, crc = hashlib.md5(), 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            md5.update(block)
            crc = checksums.crc64nvme(block, crc)
    return md5.hexdigest(), base64.b64encode(crc.to_bytes(8, "big")).decode()


def ensure(work: Path, layout: Layout, log=print) -> DataSet:
    """Generate the data set for ``layout`` unless a complete one is cached."""
    root = (work / f"data-{layout.tag}").resolve()
    done = root / "manifest.json"
    reuse = False
    if done.exists():
        meta = json.loads(done.read_text())
        if meta.get("version") == _FORMAT_VERSION:
            entries = {e["key"]: Entry(**e) for e in meta["entries"]}
            return DataSet(root, entries)
        reuse = True  # an older manifest: the bytes are fine, the digests are redone
    log(f"{'indexing' if reuse else 'generating'} data set {layout.tag} in {root} (once) ...")
    started = time.monotonic()
    entries: dict[str, Entry] = {}
    for key, size in layout.objects():
        path = root / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (reuse and path.is_file() and path.stat().st_size == size):
            _write_random(path, size)
        md5, crc = _digests(path)
        mtime = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(path.stat().st_mtime))
        entries[key] = Entry(key, size, md5, mtime, crc)
    dataset = DataSet(root, entries)
    # The TSV is what the server's Lua reads at start-up (no JSON parser there).
    with open(dataset.manifest_tsv, "w") as f:
        for e in entries.values():
            f.write(f"{e.key}\t{e.size}\t{e.md5}\t{e.last_modified}\t{e.crc64nvme}\n")
    # manifest.json is written last: its presence marks a complete data set.
    done.write_text(
        json.dumps({"version": _FORMAT_VERSION, "entries": [e.__dict__ for e in entries.values()]})
    )
    total = sum(e.size for e in entries.values())
    log(f"  {total / GiB:.2f} GiB in {time.monotonic() - started:.0f} s")
    return dataset


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def describe(layout: Layout) -> dict[str, str]:
    """Human-readable sizes for scenario titles: {large}, {medium}, {mid}, {small}, {tiny}."""

    def size(n: int) -> str:
        if n >= GiB:
            return f"{n / GiB:g} GiB"
        return f"{n / MiB:g} MiB" if n >= MiB else f"{n // 1024} KiB"

    return {
        "large": size(layout.large_size),
        "medium": f"{layout.medium_count} x {size(layout.medium_size)}",
        "small": f"{layout.small_count} x {size(layout.small_size)}",
        "mid": f"{layout.mid_count} x {size(layout.mid_size)}",
        "tiny": f"{layout.tiny_count} x {size(layout.tiny_size)}",
    }
