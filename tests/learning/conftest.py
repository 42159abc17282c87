"""Fixtures for the incremental-learning tests: a small model trained once per session on the
first 3,000 rows of KDDTrain+_20Percent, and per test a copy of it with an empty data folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from learning_helpers import SMALL_K, copy_model, lines_of, train_small, write_base

from utils.registry import SQLiteRegistry as UploadRegistry
from utils.retraining import RetrainSettings


@dataclass
class Setup:
    base: Path  # the training file (read-only, shared)
    model_dir: Path
    data_dir: Path
    registry: UploadRegistry
    settings: RetrainSettings


@pytest.fixture(scope="session")
def trained(tmp_path_factory, kdd_train20_path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("learning-model")
    base = write_base(kdd_train20_path, root / "base.txt")
    return base, train_small(base, root / "model")


@pytest.fixture
def setup(trained, tmp_path) -> Setup:
    base, model = trained
    model_dir = copy_model(model, tmp_path / "model")
    data_dir = tmp_path / "data"
    registry = UploadRegistry(data_dir)
    settings = RetrainSettings(model_dir=model_dir, data_dir=data_dir, train_file=base,
                               n_clusters=SMALL_K)
    return Setup(base, model_dir, data_dir, registry, settings)


@pytest.fixture(scope="session")
def fresh_lines(kdd_train20_path) -> list[str]:
    """KDDTrain+_20Percent rows after the training file's: in-distribution, never trained on."""
    return lines_of(kdd_train20_path)[3000:]


@pytest.fixture(scope="session")
def test_lines(kdd_test_path) -> list[str]:
    return lines_of(kdd_test_path)
