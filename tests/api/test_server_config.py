"""Settings from the environment, the app factory's wiring, and the production entry point."""

from __future__ import annotations

import gzip
import importlib
import sys

import limits
import pytest

import server.alerts
import server.analysis
from server import create_app
from server.config import REPO_ROOT, load_config, max_content_length
from tests.helpers.api_calls import upload
from tests.helpers.kdd_data import synthetic_kdd


def test_defaults_when_nothing_is_set():
    config = load_config({})
    assert config["MODEL_DIR"] == REPO_ROOT / "models"
    assert config["DATA_DIR"] == REPO_ROOT / "data"
    assert config["MAX_UPLOAD_MB"] == 200.0
    assert config["MAX_JSON_MB"] == 20.0
    assert config["CORS_ORIGINS"] == ()
    assert config["PORT"] == 5000
    assert config["MODEL_CHECK_INTERVAL"] == 1.0
    assert config["MIN_FREE_MB"] == 512.0
    assert config["ADMIN_AUTH_LIMIT"] == "10 per minute"


def test_environment_values_are_parsed():
    config = load_config({
        "ANOMALYZE_MODEL_DIR": "/srv/models", "ANOMALYZE_DATA_DIR": "/srv/data",
        "ANOMALYZE_MAX_UPLOAD_MB": "4.5", "PORT": "8080",
        "ANOMALYZE_CORS_ORIGINS": "https://a.example, https://b.example/ ,",
    })
    assert str(config["MODEL_DIR"]) == "/srv/models"
    assert str(config["DATA_DIR"]) == "/srv/data"
    assert config["MAX_UPLOAD_MB"] == 4.5
    assert config["PORT"] == 8080
    assert config["CORS_ORIGINS"] == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(("variable", "value"), [
    ("ANOMALYZE_MAX_UPLOAD_MB", "lots"), ("ANOMALYZE_MAX_UPLOAD_MB", "0"),
    ("PORT", "70000"), ("PORT", "http"), ("ANOMALYZE_LOG_LEVEL", "chatty"),
    ("ANOMALYZE_MIN_FREE_MB", "-1"), ("ANOMALYZE_MIN_FREE_MB", "plenty"),
    ("ANOMALYZE_ADMIN_AUTH_LIMIT", "lots"), ("ANOMALYZE_ADMIN_AUTH_LIMIT", "10 per fortnight"),
])
def test_bad_values_fail_naming_the_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        load_config({variable: value})


@pytest.mark.parametrize("text", [
    "10 per minute", "10/minute", "5 per 30 seconds", "5/30 Seconds", "100/hour", "1 PER DAY",
    "2/second; 100 per hour", "1 per year|3 per month, 4/day", " 10  per  minute ", "0 per second",
    "lots", "10 per fortnight", "10 per", "per minute", "10 minutes", "-1 per minute",
    "1.5 per minute", "10 per minute;", "10 per minutess", "ten per minute", "10 per ５ minutes",
])
def test_the_settings_table_reads_rates_as_the_limits_library_does(text):
    """settings/ is standard library only, so it writes the notation of `limits` out itself."""
    try:
        limits.parse_many(text.strip())
    except ValueError:
        with pytest.raises(ValueError, match="ANOMALYZE_ADMIN_AUTH_LIMIT"):
            load_config({"ANOMALYZE_ADMIN_AUTH_LIMIT": text})
    else:
        assert load_config({"ANOMALYZE_ADMIN_AUTH_LIMIT": text})["ADMIN_AUTH_LIMIT"] == text.strip()


def test_body_limit_leaves_room_for_the_multipart_framing(app):
    assert app.config["MAX_CONTENT_LENGTH"] == max_content_length(200.0) > 200 * 1024 * 1024


def test_cors_is_off_unless_origins_are_configured(model_dir, tmp_path):
    plain = create_app({"MODEL_DIR": model_dir, "DATA_DIR": tmp_path})
    response = plain.test_client().get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers

    app = create_app({"MODEL_DIR": model_dir, "DATA_DIR": tmp_path,
                      "CORS_ORIGINS": ("https://ui.example",)})
    client = app.test_client()
    allowed = client.get("/health", headers={"Origin": "https://ui.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_entry_point_never_runs_in_debug_mode(monkeypatch, model_dir, tmp_path):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    monkeypatch.setenv("ANOMALYZE_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("ANOMALYZE_DATA_DIR", str(tmp_path))
    monkeypatch.delitem(sys.modules, "api_server", raising=False)
    api_server = importlib.import_module("api_server")
    assert api_server.app.debug is False
    assert api_server.app.config["MODEL_DIR"] == model_dir
    assert api_server.app.test_client().get("/health").status_code == 200


def test_settings_are_read_once_so_a_later_typo_cannot_break_uploads(model_dir, tmp_path,
                                                                    monkeypatch):
    app = create_app({"MODEL_DIR": model_dir, "DATA_DIR": tmp_path, "RETRAIN_THRESHOLD": 0})
    monkeypatch.setenv("ANOMALYZE_MAX_DECOMPRESSED_MB", "lots")
    monkeypatch.setenv("ANOMALYZE_SCORING_THREADS", "two")
    response = upload(app.test_client(), gzip.compress(synthetic_kdd(20, 5)), name="t.txt.gz")
    assert response.status_code == 200, response.get_json()


def test_upload_limits_and_threads_reach_the_scoring_from_the_config(model_dir, tmp_path,
                                                                    monkeypatch):
    seen = []
    real = server.analysis.iter_scored_chunks

    def spy(*args, **kwargs):
        seen.append((kwargs["threads"], kwargs["max_decompressed_bytes"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(server.analysis, "iter_scored_chunks", spy)
    app = create_app({"MODEL_DIR": model_dir, "DATA_DIR": tmp_path, "RETRAIN_THRESHOLD": 0,
                      "SCORING_THREADS": 3, "MAX_DECOMPRESSED_MB": 1})
    client = app.test_client()
    assert upload(client, synthetic_kdd(20, 5)).status_code == 200
    assert seen == [(3, 1 << 20)]
    inflated = synthetic_kdd(20, 5) * 600
    assert len(inflated) > 1 << 20
    bomb = gzip.compress(inflated)
    response = upload(client, bomb, name="big.txt.gz")
    assert response.status_code == 413
    assert "1 MB" in response.get_json()["error"]


def test_ecs_alert_uploads_are_read_with_the_same_limits_and_threads(model_dir, tmp_path,
                                                                     monkeypatch):
    seen = []
    real = server.alerts.iter_scored_chunks

    def spy(*args, **kwargs):
        seen.append((kwargs["threads"], kwargs["max_decompressed_bytes"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(server.alerts, "iter_scored_chunks", spy)
    app = create_app({"MODEL_DIR": model_dir, "DATA_DIR": tmp_path, "RETRAIN_THRESHOLD": 0,
                      "SCORING_THREADS": 3, "MAX_DECOMPRESSED_MB": 1})
    client = app.test_client()
    assert upload(client, synthetic_kdd(20, 5), query="?format=ndjson").status_code == 200
    assert seen == [(3, 1 << 20)]
    bomb = gzip.compress(synthetic_kdd(20, 5) * 600)
    response = upload(client, bomb, name="big.txt.gz", query="?format=ndjson")
    assert response.status_code == 413
    assert "1 MB" in response.get_json()["error"]


@pytest.mark.parametrize(("variable", "value"), [
    ("ANOMALYZE_MAX_DECOMPRESSED_MB", "lots"), ("ANOMALYZE_SCORING_THREADS", "0"),
    ("ANOMALYZE_RETRAIN_TOLERANCE", "nan"), ("ANOMALYZE_ADMIN_TOKEN", "short"),
    ("ANOMALYZE_RETRAIN_THRESHOLD", "ten"),
])
def test_the_app_does_not_start_with_a_bad_value(variable, value, monkeypatch, tmp_path):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        create_app({"MODEL_DIR": tmp_path, "DATA_DIR": tmp_path})
