"""Fixtures for the frontend tests: an app whose ML API is mocked at the HTTP boundary
(`responses`) and whose back-off sleep is a fake clock, so no test waits for real."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import responses

from api.app_vercel import create_app

from .fakes import API_URL, HEALTH_OK, PREDICTION, FakeTime


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def app(fake_time: FakeTime):
    return create_app({
        "TESTING": True,
        "API_URL": API_URL,
        "API_WAKE_TIMEOUT": 30.0,
        "API_BACKOFF_INITIAL": 1.0,
        "API_BACKOFF_MAX": 8.0,
        "TABLE_LIMIT": 5000,
        "SLEEP": fake_time.sleep,
        "CLOCK": fake_time.monotonic,
    })


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def mocked_api():
    """The ML API at API_URL; unmatched requests raise ConnectionError, like a dead server."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def awake_api(mocked_api):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    return mocked_api


@pytest.fixture
def prediction() -> dict[str, Any]:
    return copy.deepcopy(PREDICTION)
