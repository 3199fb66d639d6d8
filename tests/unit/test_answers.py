"""The check of a GET's answer against the object it is pinned to (``planning._answers``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from s3pull import ObjectChangedError, ProtocolError
from s3pull.planning._answers import RangeIgnored, check_answer


@dataclass(frozen=True)
class Pin:
    size: int = 1000
    etag: str | None = '"abc"'
    version_id: str | None = "v1"


@dataclass(frozen=True)
class Answer:
    status: int = 206
    content_range: tuple[int, int, int | None] | None = (0, 99, 1000)
    content_length: int | None = 100
    etag: str | None = '"abc"'
    version_id: str | None = "v1"


def test_the_range_asked_for_passes() -> None:
    check_answer(Pin(), Answer(), 0, 99, ranged=True)


def test_a_206_with_an_unknown_total_passes() -> None:
    check_answer(Pin(), Answer(content_range=(0, 99, None)), 0, 99, ranged=True)


def test_a_206_for_other_bytes_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="asked for bytes 100-199 but the server sent 0-99"):
        check_answer(Pin(), Answer(), 100, 199, ranged=True)


def test_a_206_with_another_total_means_the_object_changed() -> None:
    with pytest.raises(ObjectChangedError, match="size changed from 1000 to 2000"):
        check_answer(Pin(), Answer(content_range=(0, 99, 2000)), 0, 99, ranged=True)


def test_a_200_for_a_part_means_the_server_ignores_range() -> None:
    whole = Answer(status=200, content_range=None, content_length=1000)
    with pytest.raises(RangeIgnored):
        check_answer(Pin(), whole, 100, 199, ranged=True)


def test_a_200_for_a_range_that_is_the_whole_object_passes() -> None:
    whole = Answer(status=200, content_range=None, content_length=1000)
    check_answer(Pin(), whole, 0, 999, ranged=True)


@pytest.mark.parametrize("ranged", [True, False])
def test_a_200_of_another_length_means_the_object_changed(ranged: bool) -> None:
    whole = Answer(status=200, content_range=None, content_length=999)
    with pytest.raises(ObjectChangedError, match="size changed from 1000 to 999"):
        check_answer(Pin(), whole, 0, 999, ranged=ranged)


def test_a_200_without_a_length_passes() -> None:
    whole = Answer(status=200, content_range=None, content_length=None)
    check_answer(Pin(), whole, 0, 999, ranged=False)


def test_another_etag_means_the_object_changed() -> None:
    with pytest.raises(ObjectChangedError, match='ETag changed from "abc" to "def"'):
        check_answer(Pin(), Answer(etag='"def"'), 0, 99, ranged=True)


def test_another_version_means_the_object_changed() -> None:
    with pytest.raises(ObjectChangedError, match="version changed from v1 to v2"):
        check_answer(Pin(), Answer(version_id="v2"), 0, 99, ranged=True)


@pytest.mark.parametrize(
    ("pin", "answer"),
    [
        (Pin(etag=None, version_id=None), Answer(etag='"def"', version_id="v2")),
        (Pin(), Answer(etag=None, version_id=None)),
    ],
    ids=["nothing-pinned", "nothing-answered"],
)
def test_what_either_side_does_not_tell_is_not_compared(pin: Pin, answer: Answer) -> None:
    check_answer(pin, answer, 0, 99, ranged=True)
