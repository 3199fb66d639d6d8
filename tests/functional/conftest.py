"""The fault-injecting S3 server every functional test talks to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3pull.testing import FaultServer


@pytest.fixture
def s3() -> Iterator[FaultServer]:
    """A fresh, empty server per test; afterwards it must have seen no error
    of its own (a test that puts objects in first defines its own ``s3``)."""
    with FaultServer() as server:
        yield server
        assert server.errors == []
