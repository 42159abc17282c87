"""The settings table: every variable once per process, sound defaults, clear refusals, docs
generated from it, and no other code reading the environment."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from pathlib import Path

import pytest

import settings
from settings import READERS, REPO_ROOT, SETTINGS, SettingError, load_settings, parsers
from settings.__main__ import main as settings_main
from settings.markdown import DOCS, render_table, selected, stale_documents
from tests.helpers.repo import imported_roots
from utils import readers, retraining
from utils import registry as upload_registry
from utils.gunicorn_worker import ClientLimits

FREE_TEXT = (parsers.path, parsers.free_text)
NUMBER_SETTINGS = [s for s in SETTINGS if s.parse.accepts.startswith(("a number", "a whole"))]


def _id(setting) -> str:
    return f"{setting.name}-{'-'.join(setting.readers)}"


# --- the table ------------------------------------------------------------------------------


def test_each_process_reads_each_variable_once_and_only_known_processes_read():
    for reader in READERS:
        names = [s.name for s in SETTINGS if reader in s.readers]
        assert len(names) == len(set(names)), f"{reader} reads a variable twice"
        keys = [s.key for s in SETTINGS if reader in s.readers]
        assert len(keys) == len(set(keys))
    assert all(s.readers and set(s.readers) <= set(READERS) for s in SETTINGS)


@pytest.mark.parametrize("setting", SETTINGS, ids=_id)
def test_every_row_says_what_it_means_in_one_line(setting):
    assert re.fullmatch(r"(ANOMALYZE_)?[A-Z][A-Z0-9_]*[A-Z0-9]", setting.name)
    assert setting.meaning and "\n" not in setting.meaning and len(setting.meaning) <= 120
    assert setting.default is not None or setting.shown, "a None default needs `shown`"


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.default not in (None, ())],
                         ids=_id)
def test_every_default_is_a_value_its_parser_accepts(setting):
    text = f"{setting.default:g}" if isinstance(setting.default, float) else str(setting.default)
    assert setting.parse(text) == setting.default


@pytest.mark.parametrize("setting", SETTINGS, ids=_id)
def test_only_paths_and_free_text_accept_every_value(setting):
    if setting.parse in FREE_TEXT:
        assert setting.parse.refuses is None
    else:
        assert setting.parse.refuses is not None
        with pytest.raises((ValueError, TypeError)):
            setting.parse(setting.parse.refuses)


@pytest.mark.parametrize("setting", NUMBER_SETTINGS, ids=_id)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "lots", "1e999"])
def test_numbers_are_finite(setting, text):
    with pytest.raises(SettingError, match=setting.name):
        load_settings(setting.readers[0], {setting.name: text})


def test_library_defaults_agree_with_the_table():
    api = load_settings("api", {})
    assert api["RETRAIN_THRESHOLD"] == upload_registry.DEFAULT_THRESHOLD
    assert api["RETRAIN_TOLERANCE"] == retraining.DEFAULT_TOLERANCE
    assert api["RETRAIN_MAX_UPLOAD_ROWS"] == retraining.DEFAULT_MAX_UPLOAD_ROWS
    assert api["RETRAIN_CATEGORY_TOLERANCE"] == retraining.DEFAULT_CATEGORY_TOLERANCE
    assert api["RETRAIN_MAX_ROWS_PER_UPLOAD"] == retraining.DEFAULT_MAX_ROWS_PER_UPLOAD
    assert api["RETRAIN_MAX_ROWS_PER_CLIENT"] == retraining.DEFAULT_MAX_ROWS_PER_CLIENT
    assert api["MAX_DECOMPRESSED_MB"] * (1 << 20) == readers.DEFAULT_MAX_DECOMPRESSED_BYTES
    assert api["MAX_UPLOAD_MB"] == load_settings("frontend", {})["MAX_UPLOAD_MB"]
    for reader in ("gunicorn", "gunicorn_frontend"):
        assert ClientLimits.from_settings(load_settings(reader, {})) == ClientLimits()


# --- reading --------------------------------------------------------------------------------


def test_unset_or_blank_variables_take_the_default():
    assert load_settings("api", {}) == load_settings("api", {"ANOMALYZE_MAX_JSON_MB": "  "})
    assert load_settings("api", {})["MAX_JSON_MB"] == 20.0
    assert load_settings("frontend", {})["PORT"] == 8000
    assert load_settings("gunicorn", {})["PORT"] == 5000


def test_values_are_stripped_and_parsed():
    config = load_settings("api", {
        "ANOMALYZE_MAX_JSON_MB": " 2.5 ", "ANOMALYZE_RETRAIN_K": "4, 6,8",
        "ANOMALYZE_LOG_LEVEL": "debug", "ANOMALYZE_RETRAIN_TRAIN_FILE": "~/train.txt",
        "ANOMALYZE_SCORING_THREADS": "3", "ANOMALYZE_ADMIN_TOKEN": "x" * 16})
    assert config["MAX_JSON_MB"] == 2.5
    assert config["RETRAIN_K"] == (4, 6, 8)
    assert config["LOG_LEVEL"] == "DEBUG"
    assert config["RETRAIN_TRAIN_FILE"] == Path.home() / "train.txt"
    assert config["SCORING_THREADS"] == 3
    assert config["ADMIN_TOKEN"] == "x" * 16


def test_a_refused_value_is_named_with_what_is_accepted():
    with pytest.raises(SettingError) as info:
        load_settings("api", {"ANOMALYZE_MAX_JSON_MB": "lots"})
    assert str(info.value) == ("environment variable ANOMALYZE_MAX_JSON_MB='lots': must be a "
                               "number above 0")
    assert isinstance(info.value, ValueError)


def test_every_refused_value_is_named_at_once():
    with pytest.raises(SettingError) as info:
        load_settings("api", {"ANOMALYZE_MAX_JSON_MB": "0", "PORT": "http"})
    assert "ANOMALYZE_MAX_JSON_MB" in str(info.value) and "PORT" in str(info.value)


def test_a_refused_token_is_not_echoed():
    weak = "hunter2"
    with pytest.raises(SettingError, match="ANOMALYZE_ADMIN_TOKEN") as info:
        load_settings("api", {"ANOMALYZE_ADMIN_TOKEN": weak})
    assert weak not in str(info.value)


@pytest.mark.parametrize("text", ["-0.1", "-1", "nan", "NaN", "inf", "1.5", "half"])
def test_a_negative_or_nan_tolerance_is_refused(text):
    with pytest.raises(SettingError, match="ANOMALYZE_RETRAIN_TOLERANCE"):
        load_settings("scripts", {"ANOMALYZE_RETRAIN_TOLERANCE": text})


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("0.005", 0.005), ("1", 1.0)])
def test_a_tolerance_from_zero_to_one_is_read(text, value):
    assert load_settings("scripts", {"ANOMALYZE_RETRAIN_TOLERANCE": text})[
        "RETRAIN_TOLERANCE"] == value


@pytest.mark.parametrize("tolerance", [-0.01, math.nan, 2.0])
def test_the_gate_refuses_a_tolerance_that_would_let_anything_through(tolerance):
    with pytest.raises(ValueError, match="tolerance"):
        retraining.gate({"balanced_f1": 0.9, "auroc": 0.9}, {"balanced_f1": 0.1, "auroc": 0.1},
                        tolerance)
    with pytest.raises(ValueError, match="category_tolerance"):
        retraining.gate({"balanced_f1": 0.9, "auroc": 0.9}, {"balanced_f1": 0.9, "auroc": 0.9},
                        0.005, tolerance)


@pytest.mark.parametrize(("text", "refused"), [
    ("https://ui.example, http://localhost:8000/", False), ("*", False),
    ("ui.example", True), ("https://ui.example/path", True), ("ftp://ui.example", True)])
def test_cors_origins_must_be_origins(text, refused):
    if refused:
        with pytest.raises(SettingError, match="ANOMALYZE_CORS_ORIGINS"):
            load_settings("api", {"ANOMALYZE_CORS_ORIGINS": text})
    else:
        assert load_settings("api", {"ANOMALYZE_CORS_ORIGINS": text})["CORS_ORIGINS"]


def test_an_unknown_reader_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown reader"):
        load_settings("worker", {})


def test_scripts_stop_with_exit_code_2_naming_the_variable(capsys):
    with pytest.raises(SystemExit) as info:
        settings.script_settings({"API_PORT": "http"})
    assert info.value.code == 2
    assert "API_PORT='http'" in capsys.readouterr().err


# --- the docs -------------------------------------------------------------------------------


def test_the_docs_tables_match_the_settings_table():
    assert stale_documents() == [], "run: python -m settings --markdown"
    assert settings_main(["--check"]) == 0


def test_config_md_lists_every_variable_and_frontend_md_the_frontends():
    config = (REPO_ROOT / "docs" / "CONFIG.md").read_text()
    assert render_table(SETTINGS) in config
    frontend = (REPO_ROOT / "docs" / "FRONTEND.md").read_text()
    assert render_table(selected("frontend")) in frontend
    assert {path.name for path in DOCS} == {"CONFIG.md", "FRONTEND.md"}


def test_a_changed_row_makes_the_docs_stale(monkeypatch):
    import settings.markdown as markdown

    changed = (*SETTINGS[:-1], dataclasses.replace(SETTINGS[-1], meaning="something else"))
    monkeypatch.setattr(markdown, "SETTINGS", changed)
    assert markdown.stale_documents() == [REPO_ROOT / "docs" / "CONFIG.md"]


# --- nobody else reads the environment ------------------------------------------------------

CODE = ("*.py", "server/*.py", "api/*.py", "utils/*.py", "scripts/*.py", "benchmarks/*.py")
PRODUCTION = sorted(path for pattern in CODE for path in REPO_ROOT.glob(pattern))
ENV_READ = re.compile(r"environ\.get\(|environ\[|getenv\(|environ\.pop\(")


@pytest.mark.parametrize("path", PRODUCTION, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_only_the_settings_package_reads_the_environment(path):
    reads = [line.strip() for line in path.read_text().splitlines() if ENV_READ.search(line)]
    assert reads == [], f"{path.name} reads the environment: add a row to settings/table.py"


def test_every_variable_the_code_and_docs_name_is_in_the_table():
    named = set()
    for pattern in (*CODE, "settings/*.py", "docs/*.md", "README.md", "render.yaml", "Makefile",
                    "api/templates/*.html", "api/static/js/*.js"):
        for path in REPO_ROOT.glob(pattern):
            named |= set(re.findall(r"\bANOMALYZE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert named <= {s.name for s in SETTINGS}


def test_the_settings_package_uses_only_the_standard_library():
    for name, roots in imported_roots("settings").items():
        assert roots <= set(sys.stdlib_module_names) | {"settings"}, (name, roots)


def test_the_frontend_deployment_carries_the_settings_package():
    vercel = json.loads((REPO_ROOT / "vercel.json").read_text())
    (build,) = vercel["builds"]
    assert "settings/**" in build["config"]["includeFiles"]
