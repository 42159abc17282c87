"""The layout a newcomer reads first: every folder says what it holds, in its package
docstring or in README's layout table, and that table names only folders that exist."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Not in a fresh clone: `make data` (and the API's first start) create it.
RUNTIME_FOLDERS = {"data"}


def tracked_folders() -> set[str]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    folders = set()
    for name in listed:
        parent = Path(name).parent
        while parent != Path("."):
            folders.add(parent.as_posix())
            parent = parent.parent
    return folders


def readme_folders() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    table = text[text.index("| path | what |"):]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name.rstrip("/") for row in rows
            for name in re.findall(r"`([^`]+/)`", row.split("|")[1])}


def has_docstring(folder: str) -> bool:
    init = REPO_ROOT / folder / "__init__.py"
    return init.is_file() and bool(ast.get_docstring(ast.parse(init.read_text())))


def test_every_folder_says_what_it_holds():
    described = readme_folders()
    for folder in sorted(tracked_folders()):
        parts = folder.split("/")
        # A folder inside a described one is covered by it when it is not a package
        # (api/static/js) or is described by its own docstring.
        covered = any("/".join(parts[:n]) in described for n in range(1, len(parts)))
        assert folder in described or has_docstring(folder) or (
            covered and not (REPO_ROOT / folder / "__init__.py").is_file()), folder


def test_the_readme_layout_names_only_folders_that_exist():
    tracked = tracked_folders()
    for folder in readme_folders() - RUNTIME_FOLDERS:
        assert folder in tracked, folder
