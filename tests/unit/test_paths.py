"""Local paths: a key never writes outside the destination, and no two keys
of a batch write the same file."""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3pull import ConfigError, UnsafePathError
from s3pull.planning._paths import (
    NAME_MAX,
    RELATIVE_PATH_MAX,
    LocalTarget,
    PathClaims,
    _DigestSet,
    destination_file,
    key_base,
    key_to_target,
    local_destination,
    safe_name,
)

SOURCE = "s3://bucket/some/key"
CONTROL = re.compile("[\x00-\x1f\x7f]")


@pytest.mark.parametrize(
    "name",
    ["report.pdf", "a", "...", "..a", ".hidden", "with space", "ünïcode €", "a" * NAME_MAX, "-x"],
)
def test_safe_names(name: str) -> None:
    assert safe_name(name, source=SOURCE) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "cannot use"),
        (".", "cannot use"),
        ("..", "cannot use"),
        ("a/b", "path separators"),
        ("../etc", "path separators"),
        ("/abs", "path separators"),
        ("a\\b", "path separators"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("a\x1fb", "control characters"),
        ("a\x7fb", "control characters"),
        ("a" * (NAME_MAX + 1), "longer than 255 bytes"),
        ("€" * 86, "longer than 255 bytes"),  # 258 bytes in 86 characters
    ],
)
def test_unsafe_names(name: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match=reason) as info:
        safe_name(name, source=SOURCE)
    assert info.value.source == SOURCE
    assert str(info.value).startswith(f"{SOURCE}: ")


def test_length_limit_counts_bytes_not_characters() -> None:
    assert safe_name("€" * 85, source=SOURCE) == "€" * 85  # exactly 255 bytes
    with pytest.raises(UnsafePathError):
        safe_name("€" * 85 + "a", source=SOURCE)


def test_destination_directory_gets_the_source_name() -> None:
    assert destination_file("a.bin", Path("out"), is_dir=True, source=SOURCE) == Path("out/a.bin")


def test_destination_file_is_used_as_is() -> None:
    # The key's name is irrelevant (even an unsafe one) when the caller named the file.
    assert destination_file("..", Path("out/x.bin"), is_dir=False, source=SOURCE) == Path(
        "out/x.bin"
    )


@pytest.mark.parametrize("name", ["..", "", "../../etc/passwd", "a/b"])
def test_destination_directory_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafePathError):
        destination_file(name, Path("out"), is_dir=True, source=SOURCE)


def test_safe_name_refuses_what_the_file_system_cannot_encode() -> None:
    with pytest.raises(UnsafePathError, match="cannot encode"):
        safe_name("a\ud800", source=SOURCE)


# key_base ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "base"),
    [
        ("logs/2024", "logs/"),
        ("logs/", "logs/"),
        ("logs", ""),
        ("x", ""),
        ("", ""),
        ("/", "/"),
        ("a/b/c", "a/b/"),
        ("a//b", "a//"),
    ],
)
def test_key_base(prefix: str, base: str) -> None:
    assert key_base(prefix) == base


@given(st.text())
def test_key_base_is_a_prefix_ending_at_a_slash(prefix: str) -> None:
    base = key_base(prefix)
    assert prefix.startswith(base)
    assert base == "" or base.endswith("/")
    assert "/" not in prefix[len(base) :]


# key_to_target: accepted keys ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "base", "relative", "is_directory"),
    [
        ("a.txt", "", "a.txt", False),
        ("a/b/c.txt", "", "a/b/c.txt", False),
        ("logs/2024/01.gz", "logs/", "2024/01.gz", False),
        ("logs/2024-01.gz", "logs/", "2024-01.gz", False),
        ("logs/2024/", "logs/", "2024", True),
        ("a/", "", "a", True),
        ("a/b/", "", "a/b", True),
        ("/x", "/", "x", False),  # the prefix "/x" lists keys that start with "/"
        ("...", "", "...", False),
        ("..a/.b/c..", "", "..a/.b/c..", False),
        (" a /b ", "", " a /b ", False),
        ("ünïcode €/日本", "", "ünïcode €/日本", False),
        ("a" * NAME_MAX + "/" + "€" * 85, "", "a" * NAME_MAX + "/" + "€" * 85, False),
    ],
)
def test_keys_map_to_relative_paths(key: str, base: str, relative: str, is_directory: bool) -> None:
    assert key_to_target(key, base, source=SOURCE) == LocalTarget(relative, is_directory)


@pytest.mark.parametrize(("key", "base"), [("", ""), ("logs/", "logs/"), ("/", "/")])
def test_the_marker_of_the_destination_itself_maps_to_nothing(key: str, base: str) -> None:
    assert key_to_target(key, base, source=SOURCE) is None


def test_path_length_limit_counts_bytes_of_the_relative_path() -> None:
    longest = "/".join(["a" * NAME_MAX] * 16)  # 16 * 255 + 15 separators
    assert len(longest) == RELATIVE_PATH_MAX
    target = key_to_target("base/" + longest, "base/", source=SOURCE)
    assert target == LocalTarget(longest, is_directory=False)
    assert key_to_target(longest + "/", "", source=SOURCE) == LocalTarget(longest, True)
    with pytest.raises(UnsafePathError, match=f"path is longer than {RELATIVE_PATH_MAX} bytes"):
        key_to_target(longest + "/b", "", source=SOURCE)
    multibyte = "/".join(["€" * 85] * 16)  # 4095 bytes in 1375 characters
    assert key_to_target(multibyte, "", source=SOURCE) == LocalTarget(multibyte, False)
    with pytest.raises(UnsafePathError, match="path is longer"):
        key_to_target(multibyte + "/€", "", source=SOURCE)


# key_to_target: refused keys ----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "base", "reason"),
    [
        ("/abs.txt", "", "the key is an absolute path"),
        ("/", "", "the key is an absolute path"),
        ("//x", "", "the key is an absolute path"),
        ("/a/", "", "the key is an absolute path"),
        ("logs//x", "logs/", "an empty segment ('//')"),
        ("//x", "/", "an empty segment ('//')"),
        ("a//b", "", "an empty segment ('//')"),
        ("a//", "", "an empty segment ('//')"),
        ("logs//", "logs/", "an empty segment ('//')"),
        ("..", "", "a '..' segment"),
        ("../", "", "a '..' segment"),
        ("../x", "", "a '..' segment"),
        ("a/../b", "", "a '..' segment"),
        ("a/..", "", "a '..' segment"),
        ("logs/../x", "logs/", "a '..' segment"),
        (".", "", "a '.' segment"),
        ("./", "", "a '.' segment"),
        ("./a", "", "a '.' segment"),
        ("a/./b", "", "a '.' segment"),
        ("a/.", "", "a '.' segment"),
        ("a\\b", "", "contains a backslash"),
        ("..\\x", "", "contains a backslash"),
        ("a/b\\", "", "contains a backslash"),
        ("\\", "", "contains a backslash"),
        ("a\x00b", "", "contains NUL or control characters"),
        ("a/\x1f", "", "contains NUL or control characters"),
        ("a\nb/", "", "contains NUL or control characters"),
        ("a\x7f", "", "contains NUL or control characters"),
        ("a\tb", "", "contains NUL or control characters"),
        ("\x1b[31mred", "", "contains NUL or control characters"),
        ("a" * (NAME_MAX + 1), "", f"a segment is longer than {NAME_MAX} bytes"),
        ("x/" + "€" * 86 + "/y", "", f"a segment is longer than {NAME_MAX} bytes"),
        ("a\ud800b", "", "characters the file system cannot encode"),
        ("a/\udfff/", "", "characters the file system cannot encode"),
    ],
)
def test_unsafe_keys_are_refused(key: str, base: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match=re.escape(reason)) as info:
        key_to_target(key, base, source=SOURCE)
    assert info.value.source == SOURCE
    assert not CONTROL.search(info.value.message)


def test_the_hostile_set_keeps_only_the_safe_key() -> None:
    keys = ["../../escape.txt", "/abs.txt", "a/../../b.txt", "ok/file.txt"]
    accepted = []
    for key in keys:
        try:
            target = key_to_target(key, "", source=f"s3://bucket/{key}")
        except UnsafePathError:
            continue
        accepted.append(target)
    assert accepted == [LocalTarget("ok/file.txt", is_directory=False)]


@pytest.mark.parametrize(("key", "base"), [("other/x", "logs/"), ("log", "logs/"), ("x", "x/")])
def test_a_key_outside_the_base_is_a_programming_error(key: str, base: str) -> None:
    with pytest.raises(ValueError, match="does not start with the base") as info:
        key_to_target(key, base, source=SOURCE)
    assert not isinstance(info.value, UnsafePathError)


@pytest.mark.parametrize("base", ["logs", "a/b", "/x"])
def test_a_base_must_end_with_a_slash(base: str) -> None:
    with pytest.raises(ValueError, match="end with '/'") as info:
        key_to_target(base + "/x", base, source=SOURCE)
    assert not isinstance(info.value, UnsafePathError)


# key_to_target: properties -----------------------------------------------------

_PIECES = [
    "..", ".", "", "a", "B", "/", "//", "\\", "b.txt", "\x00", "\n", "\x7f", "é", "\ud800",
    "\udc80", "a" * 200, "€" * 50,
]  # fmt: skip
_keys_from_pieces = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)
_any_text = st.text(st.characters(exclude_categories=()))  # surrogates and control characters too
_bases = st.sampled_from(["", "/", "logs/", "a/b/", "é/"])


def _check_target_is_safe(key: str, base: str) -> None:
    try:
        target = key_to_target(base + key, base, source=SOURCE)
    except UnsafePathError as error:
        assert not CONTROL.search(error.message)
        return
    if target is None:
        assert key == ""
        return
    relative = target.relative
    # posixpath: the paths are POSIX, whatever the platform running the tests.
    joined = posixpath.join("/dest", relative)
    assert joined.startswith("/dest/")
    assert posixpath.normpath(joined) == joined  # nothing for the OS to reinterpret
    assert not CONTROL.search(relative)
    assert "\\" not in relative
    assert all(0 < len(os.fsencode(segment)) <= NAME_MAX for segment in relative.split("/"))
    assert len(os.fsencode(relative)) <= RELATIVE_PATH_MAX
    # Nothing was rewritten: the key is the base, the path and the marker's slash.
    assert base + relative + ("/" if target.is_directory else "") == base + key


@given(key=_any_text, base=_bases)
def test_any_text_key_is_refused_or_stays_inside(key: str, base: str) -> None:
    _check_target_is_safe(key, base)


@given(key=_keys_from_pieces, base=_bases)
def test_keys_built_from_hostile_pieces_are_refused_or_stay_inside(key: str, base: str) -> None:
    _check_target_is_safe(key, base)


# PathClaims ---------------------------------------------------------------------


def _claim(claims: PathClaims, relative: str, is_directory: bool = False) -> None:
    claims.claim(LocalTarget(relative, is_directory), source=f"s3://bucket/{relative}")


F, D = False, True  # file, directory marker


@pytest.mark.parametrize(
    ("earlier", "later", "reason"),
    [
        ([("A.txt", F)], ("a.txt", F), "(the same key twice, or names that differ only in case)"),
        ([("a.txt", F)], ("a.txt", F), "the same file"),
        ([("x/Report.PDF", F)], ("X/report.pdf", F), "the same file"),
        ([("\u00e9", F)], ("e\u0301", F), "the same file"),  # NFC and NFD spellings of é
        ([("straße", F)], ("STRASSE", F), "the same file"),
        ([("a", F)], ("a/b", F), "the key's directory 'a' is a file of this batch"),
        ([("A", F)], ("a/b/c", F), "the key's directory 'a' is a file of this batch"),
        ([("x/Y", F)], ("X/y/z/w", F), "the key's directory 'X/y' is a file of this batch"),
        ([("a/b", F)], ("a", F), "where this batch has a directory"),
        ([("a/b/c", F)], ("A/B", F), "where this batch has a directory"),
        ([("a", D)], ("a", F), "where this batch has a directory"),
        ([("a/b", D)], ("A", F), "where this batch has a directory"),
        ([("a", F)], ("a", D), "the directory marker maps to a file of this batch"),
        ([("a", F)], ("A", D), "the directory marker maps to a file of this batch"),
        ([("a", F)], ("a/b", D), "the key's directory 'a' is a file of this batch"),
        ([("a/b", D), ("a/b/c", F)], ("a/b/c/d", D), "directory 'a/b/c' is a file"),
    ],
)
def test_conflicting_claims_are_refused(
    earlier: list[tuple[str, bool]], later: tuple[str, bool], reason: str
) -> None:
    claims = PathClaims()
    for relative, is_directory in earlier:
        _claim(claims, relative, is_directory)
    with pytest.raises(UnsafePathError, match=re.escape(reason)) as info:
        _claim(claims, *later)
    assert info.value.source == f"s3://bucket/{later[0]}"


@pytest.mark.parametrize(
    "targets",
    [
        [("a", D), ("a", D), ("a/b", F), ("a/c", F), ("A", D)],
        [("Dir/x", F), ("dir/y", F), ("DIR/z/w", F), ("dIr", D)],
        [("a/b", D), ("a", D), ("A/B/c", F)],
        [("a.txt", F), ("a.txt.bak", F), ("a.txtx/b", F)],
        [("a/b", F), ("a/bc", F), ("ab", F), ("a/b.d/e", F)],
        [("ß", F), ("s", F), ("sß/x", F), ("e\u0301/x", F), ("É/y", F)],
    ],
)
def test_compatible_claims_are_accepted(targets: list[tuple[str, bool]]) -> None:
    claims = PathClaims()
    for relative, is_directory in targets:
        _claim(claims, relative, is_directory)


def test_a_refused_claim_records_nothing() -> None:
    claims = PathClaims()
    _claim(claims, "a")
    with pytest.raises(UnsafePathError):
        _claim(claims, "a/b/c")  # would have registered the directory "a/b"
    with pytest.raises(UnsafePathError, match="directory 'a' is a file"):
        _claim(claims, "a/b", D)
    _claim(claims, "x")
    with pytest.raises(UnsafePathError):
        _claim(claims, "x", D)
    _claim(claims, "y/x")  # "x" was not registered as a directory


def test_conflict_messages_escape_control_characters() -> None:
    claims = PathClaims()
    _claim(claims, "a\x1b")
    with pytest.raises(UnsafePathError, match=re.escape("'a\\x1b'")) as info:
        _claim(claims, "a\x1b/b")
    assert not CONTROL.search(info.value.message)


def test_claims_survive_merging_the_pending_digests() -> None:
    claims = PathClaims()
    count = 70_000
    for index in range(count):
        _claim(claims, f"f/{index}.bin")
    assert len(claims._files._sorted) > 0, "no merge happened"
    assert len(claims._files) == count
    assert len(claims._directories) == 1
    for early in ["f/0.bin", "F/17.BIN", f"f/{count - 1}.bin"]:
        with pytest.raises(UnsafePathError, match="the same file"):
            _claim(claims, early)
    with pytest.raises(UnsafePathError, match=re.escape("directory 'f/5.bin' is a file")):
        _claim(claims, "f/5.bin/x")
    with pytest.raises(UnsafePathError, match="where this batch has a directory"):
        _claim(claims, "F")
    for new in [f"f/{count}.bin", "f/0.bin.bak", "g/0.bin"]:
        _claim(claims, new)
    assert len(claims._files) == count + 3


_FOLD_PIECES = ["a", "A", "b", "ß", "ss", "SS", "\u00e9", "e\u0301", "\u0301", "\x01"]
_segments = st.lists(st.sampled_from(_FOLD_PIECES), min_size=1, max_size=2).map("".join)
_targets = st.builds(
    LocalTarget,
    relative=st.lists(_segments, min_size=1, max_size=3).map("/".join),
    is_directory=st.booleans(),
)


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


class _Model:
    """PathClaims with the folded paths kept as strings."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.directories: set[str] = set()

    def claim(self, target: LocalTarget) -> bool:
        parts = target.relative.split("/")
        path = _fold(target.relative)
        ancestors = {_fold("/".join(parts[:depth])) for depth in range(1, len(parts))}
        if path in self.files or ancestors & self.files:
            return False
        if target.is_directory:
            self.directories |= ancestors | {path}
        elif path in self.directories:
            return False
        else:
            self.files.add(path)
            self.directories |= ancestors
        return True


@given(st.lists(_targets, max_size=40))
def test_claims_decide_like_a_model_that_keeps_the_strings(targets: list[LocalTarget]) -> None:
    claims, model = PathClaims(), _Model()
    accepted_files: list[str] = []
    for target in targets:
        try:
            claims.claim(target, source=SOURCE)
        except UnsafePathError as error:
            assert not model.claim(target), target
            assert not CONTROL.search(error.message)
        else:
            assert model.claim(target), target
            if not target.is_directory:
                accepted_files.append(_fold(target.relative))
    # The guarantee itself, stated without the model: no two accepted files
    # are one file, and no accepted file is the directory of another.
    assert len(set(accepted_files)) == len(accepted_files)
    for path in accepted_files:
        assert not any(other.startswith(path + "/") for other in accepted_files)


# _DigestSet ---------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1)), st.integers(1, 8))
def test_digest_set_behaves_like_a_set(values: list[int], pending_max: int) -> None:
    digests, reference = _DigestSet(pending_max), set()
    for value in values:
        digests.add(value)
        reference.add(value)
        assert value in digests
        assert len(digests) == len(reference)
    stored = list(digests._sorted)
    assert stored == sorted(set(stored))  # sorted, no duplicates
    assert len(digests._pending) <= pending_max
    for probe in [*values, 0, 2**64 - 1, 12345]:
        assert (probe in digests) == (probe in reference)


@pytest.mark.parametrize(
    "destination", ["s3://b/k", "S3://b/k", "https://h/k", "gs://b/k", "http://u:pw@h/k?sig=1"]
)
def test_a_url_is_not_a_local_destination(destination: str) -> None:
    with pytest.raises(ConfigError, match="is a URL") as raised:
        local_destination(destination)
    assert "pw" not in str(raised.value) and "sig=1" not in str(raised.value)


def test_an_empty_destination_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        local_destination("")


@pytest.mark.parametrize("destination", ["./s3://b/k", "a:b", "-", "dir/", "s3:", "http:/x"])
def test_local_paths_are_destinations(destination: str) -> None:
    assert local_destination(destination) == Path(destination)
