"""Fixtures for the robustness tests: the API tests' small model (trained here once per session),
apps on temp data folders with automatic retraining off, and the NSL-KDD test rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from apitest_helpers import log_lines  # noqa: F401  (fixture, defined once for both suites)
from robust_helpers import make_app, train_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A small three-model ensemble on synthetic records (as in tests/api)."""
    return train_model(tmp_path_factory.mktemp("robust-model"), seed=0)


@pytest.fixture(autouse=True)
def _no_automatic_retrain(monkeypatch):
    """No test here wants a retrain process started behind its back."""
    monkeypatch.setenv("ANOMALYZE_RETRAIN_THRESHOLD", "0")
    monkeypatch.delenv("ANOMALYZE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("ANOMALYZE_MAX_DECOMPRESSED_MB", raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def app(model_dir, data_dir):
    return make_app(model_dir, data_dir)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def kdd_test_lines(kdd_test_path) -> list[str]:
    return kdd_test_path.read_text().splitlines()
