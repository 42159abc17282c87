"""Where the repository and the NSL-KDD files are, and what a test does when a file or
program it needs is missing: skip locally, fail in CI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def skip_or_fail(message: str) -> NoReturn:
    """Skip the test locally, fail it in CI (env CI set): CI installs everything, so a
    missing file or program there is a broken setup, never a reason to test less."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_file(path: Path, hint: str) -> Path:
    """``path`` if it exists; otherwise skip the test locally, fail it in CI."""
    if not path.is_file():
        skip_or_fail(f"{path} is missing: {hint}")
    return path


def nslkdd_dir() -> Path:
    """The NSL-KDD folder: ANOMALYZE_NSLKDD_DIR (default: the repo's data/ folder).

    Tests point ANOMALYZE_DATA_DIR at temp folders for uploads, so the data set has its own
    variable here.
    """
    return load_settings("tests")["NSLKDD_DIR"]


def nslkdd_path(name: str) -> Path:
    """An NSL-KDD file; missing files skip the test locally but fail it in CI (CI seeds
    data/)."""
    return require_file(nslkdd_dir() / name,
                        "run `make data` (CI seeds it from ../shared/data/nsl-kdd)")


def imported_roots(package: str) -> dict[str, set[str]]:
    """The top-level modules each ``.py`` file of a repository package imports (absolute
    imports only), by file name: for checking that a package needs nothing outside the
    standard library."""
    import ast

    roots: dict[str, set[str]] = {}
    for path in (REPO_ROOT / package).glob("*.py"):
        found = roots.setdefault(path.name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return roots
