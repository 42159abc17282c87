"""Settings come from documented environment variables; bad values fail loudly at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.app_vercel import create_app
from api.config import load_config, max_content_length

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_when_the_environment_is_empty():
    config = load_config({})
    assert config["API_URL"] == "http://127.0.0.1:5000"
    assert config["PORT"] == 8000
    assert config["MAX_UPLOAD_MB"] == 200.0
    assert config["API_WAKE_TIMEOUT"] > 0


def test_environment_overrides_and_converts():
    config = load_config({"ANOMALYZE_API_URL": "https://api.example.org/",
                          "ANOMALYZE_API_READ_TIMEOUT": "42.5", "PORT": "9001",
                          "ANOMALYZE_MAX_UPLOAD_MB": "50"})
    assert config["API_URL"] == "https://api.example.org"
    assert config["API_READ_TIMEOUT"] == 42.5
    assert config["PORT"] == 9001
    assert config["MAX_UPLOAD_MB"] == 50.0


@pytest.mark.parametrize(("variable", "value"), [
    ("ANOMALYZE_API_CONNECT_TIMEOUT", "soon"),
    ("PORT", "80.5"),
    ("ANOMALYZE_API_WAKE_TIMEOUT", "-1"),
])
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        load_config({variable: value})


def test_request_limit_leaves_room_for_multipart_framing():
    assert max_content_length(200) > 200 * 1024 * 1024


def test_app_reads_the_environment(monkeypatch):
    monkeypatch.setenv("ANOMALYZE_API_URL", "http://10.0.0.9:5000")
    monkeypatch.setenv("ANOMALYZE_MAX_UPLOAD_MB", "10")
    app = create_app()
    assert app.config["API_URL"] == "http://10.0.0.9:5000"
    assert app.config["MAX_CONTENT_LENGTH"] == max_content_length(10)


def test_a_given_config_is_built_on_the_defaults_not_the_environment(monkeypatch):
    monkeypatch.setenv("ANOMALYZE_API_URL", "http://10.0.0.9:5000")
    monkeypatch.setenv("ANOMALYZE_TABLE_LIMIT", "7")
    monkeypatch.setenv("ANOMALYZE_API_READ_TIMEOUT", "not-a-number")
    app = create_app({"TESTING": True, "MAX_UPLOAD_MB": 10})
    assert app.config["API_URL"] == load_config({})["API_URL"]
    assert app.config["TABLE_LIMIT"] == load_config({})["TABLE_LIMIT"]
    assert app.config["MAX_CONTENT_LENGTH"] == max_content_length(10)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def test_importing_the_factory_reads_no_environment():
    result = _python("import api.app_vercel", ANOMALYZE_MAX_UPLOAD_MB="lots")
    assert result.returncode == 0, result.stderr


def test_served_app_is_built_from_the_environment():
    result = _python("from api.index import app; print(app.config['TABLE_LIMIT'])",
                     ANOMALYZE_TABLE_LIMIT="7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


def test_served_app_does_not_start_with_a_bad_setting():
    result = _python("import api.index", ANOMALYZE_MAX_UPLOAD_MB="lots")
    assert result.returncode != 0
    assert "ANOMALYZE_MAX_UPLOAD_MB" in result.stderr


@pytest.mark.parametrize(("variable", "value"), [
    ("ANOMALYZE_API_URL", "localhost:5000"), ("ANOMALYZE_TABLE_LIMIT", "0"),
    ("ANOMALYZE_MAX_UPLOAD_MB", "nan"), ("PORT", "70000"),
])
def test_the_app_does_not_start_with_a_bad_value(variable, value, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        create_app()
