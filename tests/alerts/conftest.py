"""Fixtures for the ECS alert tests: the shared small model (tests/conftest.py), loaded."""

from __future__ import annotations

import pytest

from utils.model_store import LoadedModel, load_model


@pytest.fixture(scope="session")
def model(model_dir) -> LoadedModel:
    return load_model(model_dir)
