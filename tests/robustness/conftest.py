"""Fixtures for the robustness tests: the app on the shared small model (tests/conftest.py)
with automatic retraining off, and no admin token or decompression limit from the caller's
environment."""

from __future__ import annotations

import pytest

from tests.helpers.api_calls import make_app


@pytest.fixture(autouse=True)
def _no_automatic_retrain(monkeypatch):
    """No test here wants a retrain process started behind its back."""
    monkeypatch.setenv("ANOMALYZE_RETRAIN_THRESHOLD", "0")
    monkeypatch.delenv("ANOMALYZE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("ANOMALYZE_MAX_DECOMPRESSED_MB", raising=False)


@pytest.fixture
def app(model_dir, data_dir):
    return make_app(model_dir, data_dir)
