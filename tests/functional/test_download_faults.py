"""s3pull against the fault-injecting server: answers real stores give that
moto cannot script."""

from __future__ import annotations

from pathlib import Path

import pytest

import s3pull
from s3pull import Client, TransferConfig
from s3pull.testing import Fault, FaultServer

from ..support import leftovers, pattern

MiB = 1024 * 1024
CONFIG = TransferConfig(part_size=1 * MiB, concurrency=4)


def test_access_denied_is_typed_and_leaves_nothing(s3: FaultServer, tmp_path: Path) -> None:
    s3.put_object("bucket", "secret.bin", pattern(3 * MiB))
    s3.add_fault("bucket", "secret.bin", Fault.access_denied())
    destination = tmp_path / "secret.bin"
    destination.write_bytes(b"keep me")
    with (
        Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client,
        pytest.raises(s3pull.AccessDeniedError) as caught,
    ):
        client.download_file("s3://bucket/secret.bin", destination)
    assert isinstance(caught.value, PermissionError)
    assert caught.value.status == 403
    assert destination.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == ["secret.bin"]


def test_server_ignoring_range_still_gives_identical_bytes(s3: FaultServer, tmp_path: Path) -> None:
    data = pattern(5 * MiB + 17, seed=4)
    s3.put_object("bucket", "whole.bin", data)
    s3.add_fault("bucket", "whole.bin", Fault.ignore_range(), method="GET")
    with Client(endpoint_url=s3.endpoint_url, config=CONFIG, subscribers=[]) as client:
        result = client.download_file("s3://bucket/whole.bin", tmp_path / "whole.bin")
    assert (tmp_path / "whole.bin").read_bytes() == data
    assert result.verified == "MD5"
    # The first 200 is detected, and the object is then fetched in one plain
    # GET. (The server logs a request when it ends, and the ranged GETs that
    # were cut may end after it, so the log's order proves nothing.)
    gets = [r for r in s3.requests if r.method == "GET"]
    plain = [r for r in gets if r.range_header is None]
    # The first plain GET, which brought part 0 and was closed (whether the
    # server had sent all of it by then depends on socket buffers), and the
    # one that brings the whole object.
    assert [r.status for r in plain] == [200, 200]
    assert any((r.outcome, r.body_bytes_sent) == ("complete", len(data)) for r in plain)
    assert leftovers(tmp_path) == ["whole.bin"]
