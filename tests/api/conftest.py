"""Fixtures for the ML API tests: an app on a small model trained here on synthetic records,
with its uploads and state in temp folders, and its test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from apitest_helpers import (  # log_lines is a fixture, shared with tests/robustness
    REPO_ROOT,
    log_lines,  # noqa: F401
    synthetic_kdd,
    train_model,
    zeek_sample,
)

from server import create_app
from utils.model_store import ModelLoadError, load_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A small three-model ensemble, fitted once per session (seconds, not minutes)."""
    return train_model(tmp_path_factory.mktemp("model"), seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """A second small model with another version, for hot-reload tests."""
    return train_model(tmp_path_factory.mktemp("model2"), seed=1)


@pytest.fixture(scope="session")
def repo_model_dir(model_dir: Path) -> Path:
    """The repository's trained model when it loads, else the small test model."""
    try:
        load_model(REPO_ROOT / "models")
    except ModelLoadError:
        return model_dir
    return REPO_ROOT / "models"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def app(model_dir: Path, data_dir: Path):
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def labeled_upload() -> bytes:
    """60 rows: 40 normal, 20 neptune."""
    return synthetic_kdd(40, 20, seed=7)


@pytest.fixture
def zeek_upload() -> bytes:
    return zeek_sample()
