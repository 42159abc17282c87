"""Fixtures for the ECS alert tests: a small model trained here on synthetic records."""

from __future__ import annotations

import pytest
from apitest_helpers import train_model

from utils.model_store import LoadedModel, load_model


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> LoadedModel:
    return load_model(train_model(tmp_path_factory.mktemp("alerts-model"), seed=0))
