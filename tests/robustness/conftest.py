"""Fixtures for the robustness tests: the API tests' small model (trained here once per session),
apps on temp data folders with automatic retraining off, and the NSL-KDD test rows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from robust_helpers import LogLines, make_app, train_model

from server.request_log import LOGGER_NAME


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


@pytest.fixture
def log_lines(app) -> Iterator[list[dict]]:
    """The service's JSON log lines written while the test runs (as in tests/api)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = LogLines()
    handler.setFormatter(logger.handlers[0].formatter)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
