"""The JSON forms of the results: every one round-trips, through real JSON text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from s3pull import (
    BatchResult,
    DownloadResult,
    NotFoundError,
    ObjectInfo,
    ObjectOutcome,
    ThrottledError,
    UnsafePathError,
)
from s3pull._errors import S3PullError
from s3pull._results import DOWNLOADED, FAILED, PLANNED
from s3pull._source import HttpSource

text = st.text(max_size=20)
maybe_text = st.none() | text
sizes = st.integers(min_value=0, max_value=1 << 50)
sources = st.builds(lambda key: f"s3://bucket/{key}", text)
paths = st.builds(lambda name: Path("/data") / (name or "x"), st.text("abc/", max_size=8))


def through_json(data: object) -> object:
    return json.loads(json.dumps(data))


infos = st.builds(
    ObjectInfo,
    source=sources,
    size=sizes,
    etag=maybe_text,
    version_id=maybe_text,
    last_modified=st.none() | st.datetimes(timezones=st.just(UTC)),
    content_type=maybe_text,
    content_encoding=maybe_text,
    checksums=st.dictionaries(st.sampled_from(["CRC32C", "SHA256"]), text),
    checksum_type=st.none() | st.sampled_from(["FULL_OBJECT", "COMPOSITE"]),
    encryption=maybe_text,
    is_s3=st.booleans(),
)


def _result(source: str, path: Path, **kwargs: object) -> DownloadResult:
    return DownloadResult(source, path, **kwargs)  # type: ignore[arg-type]


results = st.builds(
    _result,
    source=sources,
    path=paths,
    bytes=sizes,
    seconds=st.floats(min_value=0, max_value=1e6),
    attempts=st.integers(min_value=1, max_value=100),
    etag=maybe_text,
    version_id=maybe_text,
    verified=st.none() | st.sampled_from(["CRC64NVME", "MD5"]),
    resumed=sizes,
)


@st.composite
def errors(draw: st.DrawFn) -> S3PullError:
    cls = draw(st.sampled_from([NotFoundError, ThrottledError, UnsafePathError, S3PullError]))
    first = draw(st.integers(min_value=0, max_value=1 << 40))
    error = cls(
        draw(text),
        source=draw(st.none() | sources),
        range=draw(st.none() | st.just((first, first + 99))),
        attempts=draw(st.integers(min_value=0, max_value=9)),
        status=draw(st.none() | st.sampled_from([403, 404, 503])),
        code=draw(maybe_text),
    )
    if isinstance(error, ThrottledError):
        error.retry_after = draw(st.none() | st.floats(min_value=0, max_value=60))
    return error


@st.composite
def outcomes(draw: st.DrawFn) -> ObjectOutcome:
    kind = draw(st.sampled_from([DOWNLOADED, FAILED, PLANNED]))
    source, path = draw(sources), draw(st.none() | paths)
    if kind == DOWNLOADED:
        result = draw(results)
        return ObjectOutcome(
            source,
            result.path,
            kind,
            result=_result(
                source,
                result.path,
                **{
                    name: getattr(result, name)
                    for name in (
                        "bytes",
                        "seconds",
                        "attempts",
                        "etag",
                        "version_id",
                        "verified",
                        "resumed",
                    )
                },
            ),
        )
    if kind == FAILED:
        return ObjectOutcome(source, path, kind, error=draw(errors()))
    return ObjectOutcome(source, path, kind, size=draw(st.none() | sizes))


def same_error(a: BaseException | None, b: BaseException | None) -> bool:
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and vars(a) == vars(b) and str(a) == str(b)


@given(infos)
def test_object_info_round_trips(info: ObjectInfo) -> None:
    assert ObjectInfo.from_json(through_json(info.to_json())) == info  # type: ignore[arg-type]


@given(results)
def test_download_result_round_trips(result: DownloadResult) -> None:
    assert DownloadResult.from_json(through_json(result.to_json())) == result  # type: ignore[arg-type]


@given(outcomes())
def test_outcome_round_trips(outcome: ObjectOutcome) -> None:
    back = ObjectOutcome.from_json(through_json(outcome.to_json()))  # type: ignore[arg-type]
    assert (back.source, back.path, back.status, back.size, back.result) == (
        outcome.source,
        outcome.path,
        outcome.status,
        outcome.size,
        outcome.result,
    )
    assert same_error(back.error, outcome.error)


@given(st.lists(outcomes(), max_size=8), st.floats(min_value=0, max_value=1e4), st.booleans())
def test_batch_result_round_trips(items: list[ObjectOutcome], seconds: float, fast: bool) -> None:
    batch = BatchResult()
    for outcome in items:
        batch.add(outcome)
    batch.finish(seconds, fail_fast=fast)
    data = through_json(batch.to_json())
    assert data["ok"] == batch.ok  # type: ignore[index]
    back = BatchResult.from_json(data)  # type: ignore[arg-type]
    assert back.summary() == batch.summary()
    assert (back.objects, back.errors, back.stopped) == (batch.objects, batch.errors, batch.stopped)
    assert all(
        same_error(a.error, b.error) for a, b in zip(back.failures, batch.failures, strict=True)
    )


def test_one_flat_schema_for_every_outcome() -> None:
    done = ObjectOutcome(
        "s3://b/k",
        Path("/d/k"),
        DOWNLOADED,
        result=DownloadResult("s3://b/k", Path("/d/k"), 3, 0.5, 1),
    )
    failed = ObjectOutcome("s3://b/m", None, FAILED, error=NotFoundError("not found", status=404))
    assert done.to_json().keys() == failed.to_json().keys()
    assert failed.to_json()["error"] == {
        "type": "NotFoundError",
        "message": "not found",
        "source": None,
        "range": None,
        "attempts": 0,
        "status": 404,
        "code": None,
    }


def test_no_signature_in_the_json_of_a_presigned_failure() -> None:
    source = HttpSource("https://h/k?X-Amz-Signature=S3cr3t&X-Amz-Credential=AKIA1").redacted
    outcome = ObjectOutcome(source, None, FAILED, error=NotFoundError("not found", source=source))
    line = json.dumps(outcome.to_json())
    assert "S3cr3t" not in line and "AKIA1" not in line


def test_info_json_dates_are_iso_8601() -> None:
    info = ObjectInfo(
        "s3://b/k", 1, version_id="v1", last_modified=datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert info.to_json()["last_modified"] == "2024-01-02T00:00:00+00:00"
