"""Fixtures for the ML API tests: the app on the shared small model (tests/conftest.py), and
the repository's own model when it loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import create_app
from tests.helpers.repo import REPO_ROOT
from utils.model_store import ModelLoadError, load_model


@pytest.fixture(scope="session")
def repo_model_dir(model_dir: Path) -> Path:
    """The repository's trained model when it loads, else the small test model."""
    try:
        load_model(REPO_ROOT / "models")
    except ModelLoadError:
        return model_dir
    return REPO_ROOT / "models"


@pytest.fixture
def app(model_dir: Path, data_dir: Path):
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0})
