"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def poll(condition: Callable[[], T], what: str, deadline: float = 30.0,
         interval: float = 0.1) -> T:
    """The first truthy value of ``condition()``, tried until ``deadline`` seconds pass.

    Tests of background work (retrains, reloads) wait with this instead of sleeping a fixed
    time: bounded, and as fast as the machine allows.
    """
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what}")


def require_file(path: Path, hint: str) -> Path:
    """``path`` if it exists; otherwise skip the test locally, fail it in CI (env CI set)."""
    if not path.is_file():
        message = f"{path} is missing: {hint}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def nslkdd_path(name: str) -> Path:
    """An NSL-KDD file from ANOMALYZE_NSLKDD_DIR (default: the repo's data/ folder).

    Tests point ANOMALYZE_DATA_DIR at temp folders for uploads, so the data set has its own
    variable here. Missing files skip the test locally but fail it in CI (CI seeds data/).
    """
    folder = load_settings("tests")["NSLKDD_DIR"]
    return require_file(folder / name,
                        "run `make data` (CI seeds it from ../shared/data/nsl-kdd)")


@pytest.fixture(scope="session")
def kdd_test_path() -> Path:
    return nslkdd_path("KDDTest+.txt")


@pytest.fixture(scope="session")
def kdd_train_path() -> Path:
    return nslkdd_path("KDDTrain+.txt")


@pytest.fixture(scope="session")
def kdd_train20_path() -> Path:
    return nslkdd_path("KDDTrain+_20Percent.txt")
