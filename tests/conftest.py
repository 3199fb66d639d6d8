"""Fixtures shared by every tier: an environment that never reaches real AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Timing is not what property tests check, and CI machines are shared and
# noisy: a slow example must not fail a test.
settings.register_profile("s3pull", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("s3pull")


@pytest.fixture(autouse=True, scope="session")
def _isolated_aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials and empty config files: no test may pick up a real
    profile, region or endpoint from the machine it runs on."""
    home = tmp_path_factory.mktemp("aws")
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)
