"""Fixtures of the live watcher's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def log_folder(tmp_path) -> Path:
    folder = tmp_path / "current"
    folder.mkdir()
    return folder
