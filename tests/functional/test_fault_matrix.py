"""One client test per fault the FaultServer can inject (the whole list).

Each test drives the real client against an in-process FaultServer and
checks the whole contract of a download under that fault:

- success: the file is byte-for-byte the stored object, and
  ``result.attempts`` counts the requests the fault cost;
- failure: the right typed error, with ``attempts`` filled in, and the
  destination still holding what it held before (a sentinel) - no partial
  file, no temp file next to it.

Backoff never sleeps for real (a 1 ms cap) and timeouts are a few hundred
milliseconds, so the whole matrix runs in seconds.
"""

from __future__ import annotations

import gzip
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3pull
from s3pull import AsyncClient, Client, DownloadResult, RetryConfig, Timeouts, TransferConfig
from s3pull.testing import Fault, FaultServer, RequestRecord

from ..support import free_port, leftovers, pattern

MiB = 1024 * 1024
PART = 1 * MiB
MAX_ATTEMPTS = 3
RETRY = RetryConfig(max_attempts=MAX_ATTEMPTS, backoff_base=0.001, backoff_cap=0.001)
TIMEOUTS = Timeouts(5, first_byte=0.3, read=0.3, stall_window=0.2, stall_min_rate=64 * 1024)
CONFIG = TransferConfig(part_size=PART, concurrency=4, retry=RETRY, timeouts=TIMEOUTS)
#: What the destination held before a failed download; it must still be there after.
SENTINEL = b"the previous version of the file"

BUCKET = "bucket"
KEY = "object.bin"
SOURCE = f"s3://{BUCKET}/{KEY}"
#: Three parts, the last one short: part starts are 0, 1 MiB and 2 MiB.
DATA = pattern(2 * PART + 12345, seed=7)
SECOND_PART = PART


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.put_object(BUCKET, KEY, DATA)
        yield server
        assert server.errors == []


def download(
    s3: FaultServer, destination: Path, source: str = SOURCE, config: TransferConfig = CONFIG
) -> DownloadResult:
    with Client(endpoint_url=s3.endpoint_url, config=config, subscribers=[]) as client:
        return client.download_file(source, destination)


def expect_success(
    s3: FaultServer, tmp_path: Path, data: bytes = DATA, **options: object
) -> DownloadResult:
    """Download, and check the file is exactly ``data`` with nothing left beside it."""
    destination = tmp_path / "out.bin"
    result = download(s3, destination, **options)  # type: ignore[arg-type]
    assert destination.read_bytes() == data
    assert leftovers(tmp_path) == ["out.bin"]
    return result


def expect_failure(
    s3: FaultServer,
    tmp_path: Path,
    error_type: type[s3pull.S3PullError],
    source: str = SOURCE,
    config: TransferConfig = CONFIG,
) -> s3pull.S3PullError:
    """Download over a sentinel file; check the typed error and the untouched destination."""
    destination = tmp_path / "out.bin"
    destination.write_bytes(SENTINEL)
    with pytest.raises(error_type) as caught:
        download(s3, destination, source, config)
    error = caught.value
    assert destination.read_bytes() == SENTINEL
    assert leftovers(tmp_path) == ["out.bin"]
    assert error.attempts >= 1
    # Celery moves errors between processes: the type and fields survive a pickle.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.attempts, copy.status, copy.code) == (error.attempts, error.status, error.code)
    return error


def gets(s3: FaultServer) -> list[RequestRecord]:
    return [r for r in s3.requests if r.method == "GET"]


def range_start(record: RequestRecord) -> int | None:
    if record.range_header is None:
        return None
    return int(record.range_header.removeprefix("bytes=").split("-")[0])


# --------------------------------------------------------------------- status codes

STATUS_FAULTS = [
    pytest.param(503, None, s3pull.ThrottledError, id="503-SlowDown"),
    pytest.param(429, None, s3pull.ThrottledError, id="429"),
    pytest.param(500, None, s3pull.ServerError, id="500"),
    pytest.param(502, None, s3pull.ServerError, id="502"),
    pytest.param(504, None, s3pull.ServerError, id="504"),
    pytest.param(400, "RequestTimeout", s3pull.ServerError, id="400-RequestTimeout"),
]


@pytest.mark.parametrize("always", [False, True], ids=["first-attempts", "always"])
@pytest.mark.parametrize(("status", "code", "error_type"), STATUS_FAULTS)
def test_status(
    s3: FaultServer,
    tmp_path: Path,
    status: int,
    code: str | None,
    error_type: type[s3pull.S3PullError],
    always: bool,
) -> None:
    """The first MAX_ATTEMPTS - 1 answers of a part are retried; every answer: typed error."""
    if not always:
        failures = MAX_ATTEMPTS - 1
        fault = Fault.status(status, code=code, times=failures)
        s3.add_fault(BUCKET, KEY, fault, method="GET", range_start=SECOND_PART)
        result = expect_success(s3, tmp_path)
        # one GET per part (the first one plain) + the failed GETs of the second part
        assert result.attempts == 3 + failures
        second = [r.status for r in gets(s3) if range_start(r) == SECOND_PART]
        assert second == [status] * failures + [206]
        return
    s3.add_fault(BUCKET, KEY, Fault.status(status, code=code), method="GET", ranged=True)
    error = expect_failure(s3, tmp_path, error_type)
    assert error.status == status
    assert error.attempts >= MAX_ATTEMPTS
    assert error.range is not None
    # every part gives up after MAX_ATTEMPTS: no part is tried more often
    per_part: dict[int | None, int] = {}
    for record in gets(s3):
        per_part[range_start(record)] = per_part.get(range_start(record), 0) + 1
    assert max(per_part.values()) == MAX_ATTEMPTS


# --------------------------------------------------------------------- connections


def test_refused_connections_are_retried(s3: FaultServer, tmp_path: Path) -> None:
    s3.refuse_connections(MAX_ATTEMPTS - 1)
    result = expect_success(s3, tmp_path)
    assert s3.refused_connections == MAX_ATTEMPTS - 1
    assert result.attempts > 1 + 3


@pytest.mark.parametrize("closed", ["connection-refused", "request-closed-unanswered"])
def test_attempts_count_every_request_a_closed_connection_cost(
    s3: FaultServer, tmp_path: Path, closed: str
) -> None:
    if closed == "connection-refused":
        s3.refuse_connections(MAX_ATTEMPTS - 1)
    else:
        s3.add_fault(
            BUCKET, KEY, Fault.refuse(times=MAX_ATTEMPTS - 1), method="GET", range_start=SECOND_PART
        )
    result = expect_success(s3, tmp_path)
    # One GET per part (the first one plain) + one per connection closed on
    # us (a first GET that failed is followed by a HEAD, which is no attempt
    # when it succeeds, then by a GET per part).
    assert result.attempts == 3 + MAX_ATTEMPTS - 1


def test_refused_connections_end_in_network_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.refuse_connections(1000, rst=True)
    error = expect_failure(s3, tmp_path, s3pull.NetworkError)
    assert error.attempts == MAX_ATTEMPTS


def test_nothing_listening_is_a_network_error(tmp_path: Path) -> None:
    destination = tmp_path / "out.bin"
    destination.write_bytes(SENTINEL)
    config = CONFIG
    with (
        Client(endpoint_url=f"http://127.0.0.1:{free_port()}", config=config, subscribers=[]) as c,
        pytest.raises(s3pull.NetworkError) as caught,
    ):
        c.download_file(SOURCE, destination)
    assert caught.value.attempts == MAX_ATTEMPTS
    assert destination.read_bytes() == SENTINEL
    assert leftovers(tmp_path) == ["out.bin"]


def test_request_closed_unanswered_is_retried(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(
        BUCKET, KEY, Fault.refuse(times=MAX_ATTEMPTS - 1), method="GET", range_start=SECOND_PART
    )
    expect_success(s3, tmp_path)


def test_request_closed_unanswered_every_time_ends_in_network_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.refuse(), method="GET", range_start=SECOND_PART)
    error = expect_failure(s3, tmp_path, s3pull.NetworkError)
    assert error.range == (SECOND_PART, 2 * PART - 1)


# --------------------------------------------------------------------- silence


def test_no_answer_once_trips_the_first_byte_timeout_and_retries(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.hang(times=1), method="GET", range_start=SECOND_PART)
    result = expect_success(s3, tmp_path)
    assert result.attempts == 3 + 1


def test_no_answer_ever_ends_in_timeout_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.hang())
    error = expect_failure(s3, tmp_path, s3pull.TimeoutError)
    assert isinstance(error, TimeoutError)  # the builtin too
    assert error.attempts == MAX_ATTEMPTS  # all of them HEADs


def test_headers_then_no_body_once_is_retried(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.headers_only(times=1), method="GET", range_start=SECOND_PART)
    result = expect_success(s3, tmp_path)
    assert result.attempts == 3 + 1


def test_headers_then_no_body_ever_ends_in_timeout_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.headers_only(), method="GET", range_start=SECOND_PART)
    error = expect_failure(s3, tmp_path, s3pull.TimeoutError)
    assert error.range == (SECOND_PART, 2 * PART - 1)


def test_body_stopping_with_the_socket_open_resumes(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(
        BUCKET, KEY, Fault.stall(at_fraction=0.5, times=1), method="GET", range_start=SECOND_PART
    )
    result = expect_success(s3, tmp_path)
    assert result.attempts == 3 + 1
    # every byte before the stall arrived (the socket stayed open): the retry asks for the rest
    resumed = f"bytes={SECOND_PART + PART // 2}-{2 * PART - 1}"
    assert resumed in [r.range_header for r in gets(s3)]


def test_body_stopping_every_time_ends_in_timeout_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.stall(at_fraction=0.5), method="GET", ranged=True)
    expect_failure(s3, tmp_path, s3pull.TimeoutError)


def test_stall_floor_catches_a_body_that_stops_without_a_read_timeout(
    s3: FaultServer, tmp_path: Path
) -> None:
    """Timeouts documents a stall as under stall_min_rate over stall_window: zero bytes
    over the window is one, whatever the read timeout."""
    config = TransferConfig(
        part_size=PART,
        concurrency=4,
        retry=RETRY,
        timeouts=Timeouts(1.5, first_byte=0.3, stall_window=0.2, stall_min_rate=64 * 1024),
    )
    s3.add_fault(
        BUCKET, KEY, Fault.stall(at_fraction=0.5, times=1), method="GET", range_start=SECOND_PART
    )
    started = time.monotonic()
    expect_success(s3, tmp_path, config=config)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"a stopped body was only abandoned after {elapsed:.1f} s"


def test_dripping_body_is_abandoned_by_the_stall_floor_and_resumed(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(
        BUCKET,
        KEY,
        Fault.drip(chunk=16, interval=0.02, at_byte=1000, times=1),
        method="GET",
        range_start=SECOND_PART,
    )
    result = expect_success(s3, tmp_path)
    assert result.attempts == 3 + 1
    resumed = [r for r in gets(s3) if SECOND_PART + 1000 <= (range_start(r) or 0) < 2 * PART]
    assert len(resumed) == 1


def test_drip_after_fast_bytes_is_abandoned_within_one_stall_window(
    s3: FaultServer, tmp_path: Path
) -> None:
    window = 0.5
    config = TransferConfig(
        part_size=PART,
        concurrency=4,
        retry=RETRY,
        timeouts=Timeouts(5, first_byte=1, stall_window=window, stall_min_rate=64 * 1024),
    )
    s3.add_fault(
        BUCKET,
        KEY,
        Fault.drip(chunk=16, interval=0.02, at_byte=PART // 2, times=1),
        method="GET",
        range_start=SECOND_PART,
    )
    started = time.monotonic()
    expect_success(s3, tmp_path, config=config)
    elapsed = time.monotonic() - started
    assert elapsed < 1.6 * window, f"the drip was abandoned after {elapsed:.2f} s"


def test_dripping_body_every_time_ends_in_timeout_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.drip(chunk=16, interval=0.02), method="GET", ranged=True)
    error = expect_failure(s3, tmp_path, s3pull.TimeoutError)
    assert "stall" in str(error)


# --------------------------------------------------------------------- broken bodies


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.reset(at_fraction=0.5, times=1), id="RST"),
        pytest.param(Fault.truncate(at_fraction=0.5, times=1), id="FIN-before-length"),
    ],
)
def test_broken_body_resumes_from_the_last_byte_written(
    s3: FaultServer, tmp_path: Path, fault: Fault
) -> None:
    s3.add_fault(BUCKET, KEY, fault, method="GET", range_start=SECOND_PART)
    result = expect_success(s3, tmp_path)
    assert result.attempts == 3 + 1
    second = [r for r in gets(s3) if SECOND_PART <= (range_start(r) or 0) < 2 * PART]
    assert len(second) == 2
    broken, retry = sorted(second, key=lambda r: range_start(r) or 0)
    assert broken.outcome in ("reset", "truncated")
    # the retry asks for the rest of the part only: bytes already written are not re-fetched
    assert SECOND_PART < (range_start(retry) or 0) <= SECOND_PART + broken.body_bytes_sent
    assert retry.range_header is not None and retry.range_header.endswith(f"-{2 * PART - 1}")
    # The first, plain GET brought part 0 and was closed: what it sent past
    # that is the one other overhead.
    [first] = [r for r in gets(s3) if r.range_header is None]
    wasted = first.body_bytes_sent - PART
    assert s3.bytes_sent(BUCKET, KEY) <= len(DATA) + broken.body_bytes_sent + wasted


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.reset(at_fraction=0.5), id="RST"),
        pytest.param(Fault.truncate(at_fraction=0.5), id="FIN-before-length"),
    ],
)
def test_broken_body_every_time_ends_in_network_error(
    s3: FaultServer, tmp_path: Path, fault: Fault
) -> None:
    s3.add_fault(BUCKET, KEY, fault, method="GET", ranged=True)
    error = expect_failure(s3, tmp_path, s3pull.NetworkError)
    assert error.attempts >= MAX_ATTEMPTS


def test_bytes_beyond_content_length_after_a_large_body_are_not_written(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.extra_bytes(b"X" * 4096), method="GET", range_start=SECOND_PART)
    expect_success(s3, tmp_path)


def test_junk_after_a_short_body_once_is_retried(s3: FaultServer, tmp_path: Path) -> None:
    # Junk after the body, on a kept-alive connection: that connection must
    # not carry another request, and if the junk is taken for the next
    # answer's status line, that is retried, not final.
    small = DATA[:12345]
    s3.put_object(BUCKET, "small.bin", small)
    for _ in range(5):
        s3.clear_faults()
        s3.add_fault(BUCKET, "small.bin", Fault.extra_bytes(b"X" * 4096, times=1), method="GET")
        expect_success(s3, tmp_path, data=small, source=f"s3://{BUCKET}/small.bin")


def test_junk_after_every_short_body_never_leaves_a_wrong_file(
    s3: FaultServer, tmp_path: Path
) -> None:
    """A server that always sends more than Content-Length: the bytes asked
    for are kept when they can be told apart, else a short one-line error."""
    small = DATA[:12345]
    s3.put_object(BUCKET, "small.bin", small)
    s3.add_fault(BUCKET, "small.bin", Fault.extra_bytes(b"X" * 4096), method="GET")
    destination = tmp_path / "out.bin"
    for _ in range(5):
        destination.write_bytes(SENTINEL)
        try:
            download(s3, destination, f"s3://{BUCKET}/small.bin")
        except s3pull.NetworkError as error:
            assert "malformed response" in str(error)
            assert "\n" not in str(error) and len(str(error)) < 300
            assert destination.read_bytes() == SENTINEL
        else:
            assert destination.read_bytes() == small
        assert leftovers(tmp_path) == ["out.bin"]


def test_wrong_content_range_is_a_protocol_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.wrong_content_range(shift=1), method="GET")
    error = expect_failure(s3, tmp_path, s3pull.ProtocolError)
    assert "sent" in str(error)


def test_missing_content_range_is_a_protocol_error(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.missing_content_range(), method="GET")
    error = expect_failure(s3, tmp_path, s3pull.ProtocolError)
    assert "Content-Range" in str(error)


def test_range_ignored_after_the_first_part_restarts_as_one_plain_get(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.ignore_range(), method="GET", min_range_start=1)
    expect_success(s3, tmp_path)
    assert gets(s3)[-1].range_header is None
    assert gets(s3)[-1].status == 200


# --------------------------------------------------------------------- the object changes


def test_object_replaced_after_the_first_part_is_object_changed(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.replace(skip=1), method="GET")
    error = expect_failure(s3, tmp_path, s3pull.ObjectChangedError)
    assert error.status == 412
    assert all(r.if_match for r in gets(s3) if r.range_header)  # the first GET pins the rest


def test_object_replaced_and_if_match_ignored_is_object_changed(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.replace(skip=1), method="GET")
    s3.add_fault(BUCKET, KEY, Fault.ignore_if_match(), method="GET")
    error = expect_failure(s3, tmp_path, s3pull.ObjectChangedError)
    assert "ETag changed" in str(error)


def test_object_deleted_mid_download_is_not_found(s3: FaultServer, tmp_path: Path) -> None:
    s3.add_fault(BUCKET, KEY, Fault.delete(skip=1), method="GET")
    error = expect_failure(s3, tmp_path, s3pull.NotFoundError)
    assert isinstance(error, FileNotFoundError)
    assert error.status == 404


# --------------------------------------------------------------------- integrity


def test_flipped_byte_under_a_full_object_checksum_is_an_integrity_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object(BUCKET, KEY, DATA, checksum_algorithm="CRC32C")
    s3.add_fault(BUCKET, KEY, Fault.flip_byte(), method="GET", range_start=SECOND_PART)
    error = expect_failure(s3, tmp_path, s3pull.IntegrityError)
    assert "CRC32C" in str(error)


def test_flipped_byte_under_an_md5_etag_is_an_integrity_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.flip_byte(), method="GET", range_start=SECOND_PART)
    error = expect_failure(s3, tmp_path, s3pull.IntegrityError)
    assert "MD5" in str(error)


def test_gzip_object_is_stored_byte_for_byte(s3: FaultServer, tmp_path: Path) -> None:
    compressed = gzip.compress(DATA, mtime=0)
    s3.put_object(BUCKET, KEY, compressed, content_type="text/plain", content_encoding="gzip")
    result = expect_success(s3, tmp_path, data=compressed)
    assert result.bytes == len(compressed)
    assert result.verified == "MD5"


def test_error_xml_in_a_200_body_is_data(s3: FaultServer, tmp_path: Path) -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )
    s3.put_object(BUCKET, KEY, body, content_type="application/xml")
    result = expect_success(s3, tmp_path, data=body)
    assert result.attempts == 1


# --------------------------------------------------------------------- credentials


def test_expired_token_on_a_later_part_is_a_credentials_error(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.expired_token(), method="GET", min_range_start=1)
    error = expect_failure(s3, tmp_path, s3pull.CredentialsError)
    assert error.status == 403
    assert error.code == "ExpiredToken"
    assert "credentials" in str(error)
    assert "testing" not in str(error)  # the (fake) secret from the environment


def test_expired_token_once_is_survived_by_refreshing_credentials(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.add_fault(BUCKET, KEY, Fault.expired_token(times=1), method="GET", range_start=SECOND_PART)
    result = expect_success(s3, tmp_path)
    assert result.attempts == 3


# --------------------------------------------------------------------- HTTP(S) sources


def test_zero_byte_object_answered_416_to_a_range_is_an_empty_file(
    s3: FaultServer, tmp_path: Path
) -> None:
    s3.put_object(BUCKET, "empty", b"")
    result = expect_success(s3, tmp_path, data=b"", source=f"{s3.endpoint_url}/{BUCKET}/empty")
    assert result.bytes == 0
    assert gets(s3)[0].status == 416


def test_zero_byte_s3_object_is_an_empty_file(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object(BUCKET, "empty", b"")
    result = expect_success(s3, tmp_path, data=b"", source=f"s3://{BUCKET}/empty")
    assert result.bytes == 0


SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
CREDENTIAL = "AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"


def test_expired_presigned_url_is_a_clear_error_without_the_signature(
    s3: FaultServer, tmp_path: Path
) -> None:
    url = (
        f"{s3.endpoint_url}/{BUCKET}/{KEY}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={CREDENTIAL}&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}"
    )
    s3.add_fault(BUCKET, KEY, Fault.presigned_expired())
    error = expect_failure(s3, tmp_path, s3pull.AccessDeniedError, source=url)
    assert "expired" in str(error)
    assert error.attempts == 1  # not worth retrying
    for text in (str(error), repr(error), repr(error.__dict__), str(pickle.dumps(error))):
        assert SIGNATURE not in text
        assert "AKIAIOSFODNN7EXAMPLE" not in text


# --------------------------------------------------------------------- the async API


async def test_async_client_resumes_a_reset_body(tmp_path: Path) -> None:
    async with FaultServer() as s3:
        s3.put_object(BUCKET, KEY, DATA)
        s3.add_fault(
            BUCKET,
            KEY,
            Fault.reset(at_fraction=0.5, times=1),
            method="GET",
            range_start=SECOND_PART,
        )
        async with AsyncClient(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as c:
            result = await c.download_file(SOURCE, tmp_path / "out.bin")
        assert s3.errors == []
    assert result.attempts == 3 + 1
    assert (tmp_path / "out.bin").read_bytes() == DATA
    assert leftovers(tmp_path) == ["out.bin"]
