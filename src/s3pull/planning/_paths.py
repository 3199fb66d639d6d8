"""Local paths: which file a source lands in. Pure code.

Downloading one object names one file (:func:`destination_file`). Downloading
everything under a prefix maps many keys into one directory, and a key is
data chosen by whoever can write to the bucket, so each one is checked
before it turns into a path:

* :func:`key_base` picks the part of the listing prefix that local paths
  are relative to (``logs/2024`` lists ``logs/2024-01.gz``, which lands as
  ``2024-01.gz``, relative to ``logs/``).
* :func:`key_to_target` turns the rest of a key into a relative POSIX path
  and refuses anything that could leave the destination or that no file
  system would accept: absolute paths, ``.``/``..``/empty segments,
  backslashes (a separator on Windows), control characters, names over
  ``NAME_MAX`` bytes, paths over ``RELATIVE_PATH_MAX`` bytes. A path it
  returns needs no normalisation, so joining it to the destination is the
  whole story. The per-name rules live in :func:`_name_flaw`, shared with
  :func:`safe_name`; only the wording of the message differs.
* :class:`PathClaims` catches keys that are each safe but collide with each
  other: ``A.txt`` and ``a.txt`` are one file on macOS and Windows, and
  ``a`` (a file) cannot coexist with ``a/b`` (which needs ``a`` to be a
  directory). Listings can hold millions of keys, so it keeps no strings,
  only 64-bit digests in sorted arrays (about 8 bytes per path); a digest
  collision can only refuse a key that would have been fine, or let a
  file/directory clash through to fail on the disk, never let two keys
  write the same file.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import unicodedata
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

from .._errors import ConfigError, UnsafePathError
from .._source import HttpSource

#: Longest file name most file systems accept (NAME_MAX, in bytes).
NAME_MAX = 255
#: Longest relative path accepted, in bytes: Linux's PATH_MAX (4096) counts the
#: terminating NUL. The destination directory's own path comes on top of it.
RELATIVE_PATH_MAX = 4095

_CONTROL = re.compile("[\x00-\x1f\x7f]")
# A scheme as RFC 3986 spells it, then "://": s3://, https://, gs://...
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_S3_URL = re.compile(r"^s3://[^?@]*$")


class _Flaw(enum.Enum):
    """Why a string cannot be one file name."""

    EMPTY = enum.auto()
    DOTS = enum.auto()  # "." or ".."
    SEPARATOR = enum.auto()
    CONTROL = enum.auto()
    UNENCODABLE = enum.auto()  # e.g. a lone surrogate on a UTF-8 file system
    TOO_LONG = enum.auto()


def _name_flaw(name: str) -> _Flaw | None:
    """What makes ``name`` unusable as one file name, if anything.

    The one place that holds the per-name rules; :func:`safe_name` and
    :func:`key_to_target` only word the answer differently.
    """
    if not name:
        return _Flaw.EMPTY
    if name in (".", ".."):
        return _Flaw.DOTS
    if "/" in name or "\\" in name:
        return _Flaw.SEPARATOR
    if _CONTROL.search(name):
        return _Flaw.CONTROL
    try:
        size = len(os.fsencode(name))
    except UnicodeEncodeError:
        return _Flaw.UNENCODABLE
    if size > NAME_MAX:
        return _Flaw.TOO_LONG
    return None


_NAME_MESSAGES = {
    _Flaw.EMPTY: "cannot use {name!r} as a file name",
    _Flaw.DOTS: "cannot use {name!r} as a file name",
    _Flaw.SEPARATOR: "a file name must not contain path separators",
    _Flaw.CONTROL: "a file name must not contain NUL or control characters",
    _Flaw.UNENCODABLE: "the file name has characters the file system cannot encode",
    _Flaw.TOO_LONG: f"the file name is longer than {NAME_MAX} bytes",
}

_SEGMENT_MESSAGES = {
    _Flaw.EMPTY: "the key has an empty segment ('//')",
    _Flaw.DOTS: "the key has a {name!r} segment",
    # Segments are split on "/", so the separator left to find is a backslash.
    _Flaw.SEPARATOR: "the key contains a backslash",
    _Flaw.CONTROL: "the key contains NUL or control characters",
    _Flaw.UNENCODABLE: "the key has characters the file system cannot encode",
    _Flaw.TOO_LONG: f"a segment is longer than {NAME_MAX} bytes",
}


def safe_name(name: str, *, source: str) -> str:
    """Check that ``name`` is usable as one file name inside a directory.

    Refuses empty names, ``.``/``..``, separators, NUL and control
    characters, characters the file system cannot encode, and names longer
    than 255 bytes.

    Example:
        >>> safe_name("report.pdf", source="s3://b/report.pdf")
        'report.pdf'
    """
    flaw = _name_flaw(name)
    if flaw is not None:
        # Only EMPTY and DOTS messages show the name, and those names are harmless.
        raise UnsafePathError(_NAME_MESSAGES[flaw].format(name=name), source=source)
    return name


def local_destination(destination: str) -> Path:
    """The local path a download's destination names, or a refusal.

    s3pull downloads: a URL (``s3://b/k``, ``https://...``) is never turned
    into the local path ``s3:/b/k``, and an empty destination is not taken to
    mean the current directory. A local path that looks like a URL can still
    be written as ``./s3://...``.

    Raises:
        ConfigError: the destination is empty or a URL.

    Example:
        >>> local_destination("out/")
        PosixPath('out')
    """
    if not destination:
        raise ConfigError("the destination is empty: name a file or a directory ('.' for here)")
    if _URL.match(destination):
        # A presigned URL given by mistake must not show its signature, nor
        # a URL its user:password@; an s3:// URL holds neither.
        try:
            shown = destination if _S3_URL.match(destination) else HttpSource(destination).redacted
        except ValueError:  # a malformed port
            shown = destination.partition("://")[0] + "://..."
        raise ConfigError(
            f"the destination {shown!r} is a URL: s3pull downloads to local files and "
            "directories; it does not copy to a bucket or a server"
        )
    return Path(destination)


def destination_file(source_name: str, destination: Path, *, is_dir: bool, source: str) -> Path:
    """The file to write: ``destination`` itself, or ``destination/source_name``
    when ``destination`` is a directory (or ends with a separator), as in ``cp``.

    Example:
        >>> destination_file("a.bin", Path("out"), is_dir=True, source="s3://b/a.bin")
        PosixPath('out/a.bin')
    """
    if is_dir:
        return destination / safe_name(source_name, source=source)
    return destination


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """Where one key lands, relative to the destination directory."""

    #: POSIX relative path: never empty, never absolute, no ``.``/``..``/empty segments.
    relative: str
    #: True for a directory-marker key (``a/b/``): create the directory, write no file.
    is_directory: bool


def key_base(prefix: str) -> str:
    """The part of a listing prefix that local paths are relative to:
    everything up to and including its last ``/``.

    Args:
        prefix: the prefix the keys were listed under.

    Returns:
        ``""`` or a string ending with ``/``, to pass to :func:`key_to_target`.

    Example:
        >>> key_base("logs/2024"), key_base("logs/"), key_base("x"), key_base("")
        ('logs/', 'logs/', '', '')
    """
    return prefix[: prefix.rfind("/") + 1]


def key_to_target(key: str, base: str, *, source: str) -> LocalTarget | None:
    """The local target of ``key``, relative to the destination directory.

    Only one trailing ``/`` is read as a directory marker; ``a//`` has an
    empty segment and is refused like ``a//b``.

    Args:
        key: the object key; it must start with ``base``.
        base: the result of :func:`key_base` for the listing prefix.
        source: the redacted source, for the error.

    Returns:
        The target, or None when ``key == base`` (the marker of the
        destination directory itself: nothing to do).

    Raises:
        UnsafePathError: the key cannot be written safely inside the destination.
        ValueError: ``base`` is not ``""`` or ``.../``, or ``key`` does not
            start with it (a bug in the caller, not a bad key).

    Example:
        >>> key_to_target("logs/2024/01.gz", "logs/", source="s3://b/logs/2024/01.gz")
        LocalTarget(relative='2024/01.gz', is_directory=False)
        >>> key_to_target("logs/2024/", "logs/", source="s3://b/logs/2024/")
        LocalTarget(relative='2024', is_directory=True)
    """
    if base and not base.endswith("/"):
        raise ValueError(f"the base must be '' or end with '/', got {base!r}")
    if not key.startswith(base):
        raise ValueError(f"the key {key!r} does not start with the base {base!r}")
    rest = key[len(base) :]
    if not rest:
        return None
    if not base and rest.startswith("/"):
        # With a non-empty base (which ends with "/"), a leading "/" left here
        # means the key holds "//", which the segment check reports as such.
        raise UnsafePathError("the key is an absolute path", source=source)
    is_directory = rest.endswith("/")
    relative = rest[:-1] if is_directory else rest
    for segment in relative.split("/"):
        flaw = _name_flaw(segment)
        if flaw is not None:
            # Only the EMPTY and DOTS messages show the segment, and those are harmless.
            raise UnsafePathError(_SEGMENT_MESSAGES[flaw].format(name=segment), source=source)
    # Every segment encoded above, so the whole path encodes too.
    if len(os.fsencode(relative)) > RELATIVE_PATH_MAX:
        raise UnsafePathError(f"the path is longer than {RELATIVE_PATH_MAX} bytes", source=source)
    return LocalTarget(relative, is_directory)


#: Entries the pending set of a _DigestSet holds before they are merged into its array.
_PENDING_MAX = 65536


class _DigestSet:
    """A set of 64-bit integers in about 8 bytes each.

    Members live in a sorted ``array("Q")`` searched by bisection. Inserting
    into the middle of an array moves its tail, so new members wait in a
    small set and are merged in batches of ``pending_max``: each merge
    copies the array once (twice its size in memory, briefly), and the
    Python-level work is one step per merged member. The pending set costs
    about 60 bytes per entry, hence the bound.
    """

    __slots__ = ("_pending", "_pending_max", "_sorted")

    def __init__(self, pending_max: int = _PENDING_MAX) -> None:
        self._sorted: array[int] = array("Q")
        self._pending: set[int] = set()
        self._pending_max = pending_max

    def __contains__(self, digest: int) -> bool:
        if digest in self._pending:
            return True
        index = bisect_left(self._sorted, digest)
        return index < len(self._sorted) and self._sorted[index] == digest

    def __len__(self) -> int:
        return len(self._sorted) + len(self._pending)

    def add(self, digest: int) -> None:
        # A member already in the array must not enter the pending set: the
        # merge would store it twice.
        if digest in self:
            return
        self._pending.add(digest)
        if len(self._pending) > self._pending_max:
            self._merge()

    def _merge(self) -> None:
        old = self._sorted
        merged: array[int] = array("Q")
        start = 0
        for digest in sorted(self._pending):
            cut = bisect_left(old, digest, start)
            merged += old[start:cut]
            merged.append(digest)
            start = cut
        merged += old[start:]
        self._sorted = merged
        self._pending = set()


def _fold(relative: str) -> str:
    """The form two paths share when a case-insensitive, normalisation-
    insensitive file system (macOS, Windows) would see one file."""
    # No character's NFC form or case fold contains "/", and "/" never
    # composes with what follows it, so folding the whole path equals folding
    # each segment: the ancestors of a folded path are the folded ancestors.
    return unicodedata.normalize("NFC", relative).casefold()


def _digest(folded: str) -> int:
    # surrogatepass: a target built by hand may hold lone surrogates; they
    # must hash, not crash.
    data = folded.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class PathClaims:
    """The local paths one batch of keys has claimed, to refuse conflicts.

    Two keys conflict when they would write the same file on a case- or
    normalisation-insensitive file system (``A.txt`` and ``a.txt``, ``é`` as
    one code point or two), or when one needs as a directory what the other
    writes as a file (``a`` and ``a/b``, ``a`` and the marker ``a/``).
    Directories merge harmlessly: ``Dir/x`` and ``dir/y`` may both be
    claimed, and so may a directory marker any number of times. A refused
    claim records nothing.

    Memory: no path strings are kept, only a 64-bit BLAKE2b digest of each
    folded path in two :class:`_DigestSet` (files, and directories including
    every file's ancestors): about 8 bytes per distinct path once merged,
    ``8 * (files + directories)`` bytes in all, plus at most 65,536 pending
    digests per set (~4 MB each). Ten million keys take ~80 MB (~160 MB for
    the moment of a merge).

    Collisions: among ``n`` paths the chance that any two digests collide is
    about ``n**2 / 2**65``, 3e-6 for ten million paths. A collision refuses a
    key that would have been fine, or (when it hides a directory's ancestors)
    lets a file/directory clash reach the disk, where creating the file or
    directory fails. It never lets two keys write the same file, and it has
    no bearing on :func:`key_to_target`'s guarantee that paths stay inside
    the destination.

    Example:
        >>> claims = PathClaims()
        >>> claims.claim(LocalTarget("Dir/a.txt", False), source="s3://b/Dir/a.txt")
        >>> claims.claim(LocalTarget("dir/b.txt", False), source="s3://b/dir/b.txt")
        >>> claims.claim(LocalTarget("dir/A.TXT", False), source="s3://b/A")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        s3pull._errors.UnsafePathError: s3://b/A: the key maps to the same file as another item ...
    """

    __slots__ = ("_directories", "_files")

    def __init__(self) -> None:
        self._files = _DigestSet()
        self._directories = _DigestSet()

    def claim(self, target: LocalTarget, *, source: str) -> None:
        """Record ``target`` for this batch, or refuse it.

        Args:
            target: where the key lands (from :func:`key_to_target`).
            source: the redacted source, for the error.

        Raises:
            UnsafePathError: the target conflicts with one claimed before.

        Example:
            >>> claims = PathClaims()
            >>> claims.claim(LocalTarget("a/b", False), source="s3://b/a/b")
            >>> claims.claim(LocalTarget("a/c", False), source="s3://b/a/c")
        """
        folded = _fold(target.relative)
        digest = _digest(folded)
        if digest in self._files:
            problem = (
                "the directory marker maps to a file of this batch"
                if target.is_directory
                else "the key maps to the same file as another item of this batch"
                " (the same key twice, or names that differ only in case)"
            )
            raise UnsafePathError(problem, source=source)
        if digest in self._directories:
            if target.is_directory:
                return  # known already, and so are its ancestors
            raise UnsafePathError(
                "the key maps to a file where this batch has a directory", source=source
            )
        new_directories = [digest] if target.is_directory else []
        # Deepest ancestor first: a known directory's ancestors are all known
        # (they were registered with it), so the walk stops at the first one.
        end = folded.rfind("/")
        while end > 0:
            ancestor = _digest(folded[:end])
            if ancestor in self._directories:
                break
            if ancestor in self._files:
                name = target.relative.split("/")[: folded.count("/", 0, end) + 1]
                raise UnsafePathError(
                    f"the key's directory {'/'.join(name)!r} is a file of this batch",
                    source=source,
                )
            new_directories.append(ancestor)
            end = folded.rfind("/", 0, end)
        # Only now that nothing conflicts does the claim change any state.
        for directory in new_directories:
            self._directories.add(directory)
        if not target.is_directory:
            self._files.add(digest)
