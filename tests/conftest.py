"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def nslkdd_path(name: str) -> Path:
    """An NSL-KDD file from ANOMALYZE_NSLKDD_DIR (default: the repo's data/ folder).

    Tests point ANOMALYZE_DATA_DIR at temp folders for uploads, so the data set has its own
    variable here. Missing files skip the test locally but fail it in CI (CI seeds data/).
    """
    folder = Path(os.environ.get("ANOMALYZE_NSLKDD_DIR", REPO_ROOT / "data"))
    path = folder / name
    if not path.is_file():
        message = f"{path} is missing: run `make data` (CI seeds it from ../shared/data/nsl-kdd)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def kdd_test_path() -> Path:
    return nslkdd_path("KDDTest+.txt")


@pytest.fixture(scope="session")
def kdd_train_path() -> Path:
    return nslkdd_path("KDDTrain+.txt")


@pytest.fixture(scope="session")
def kdd_train20_path() -> Path:
    return nslkdd_path("KDDTrain+_20Percent.txt")
