"""Fixtures for the scale-out tests: a fresh database on the session's PostgreSQL per test, and
a fresh bucket on the session's SeaweedFS."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a new, empty database (tests never see each other's rows)."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> dict[str, str]:
    """The session's S3 server in the standard AWS variables (boto3 reads them)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server.env()


@pytest.fixture
def store_url(s3_env) -> str:
    """A new bucket name (created on first use) with a prefix."""
    return f"s3://t-{uuid.uuid4().hex[:12]}/anomalyze"
