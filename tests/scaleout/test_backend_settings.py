"""Choosing the backends from the settings: the URLs' parsers, a store without a database
refused at start-up, and the embedded default when neither is set."""

from __future__ import annotations

import pytest

from server import create_app
from settings import SettingError, load_settings
from utils.backends import BackendConfigError


@pytest.mark.parametrize("url", ["postgresql://u:p@db:5432/anomalyze",
                                 "postgres://db/anomalyze",
                                 "postgresql:///anomalyze?host=/run/postgresql"])
def test_database_urls_are_accepted(url):
    assert load_settings("api", {"ANOMALYZE_DATABASE_URL": url})["DATABASE_URL"] == url


@pytest.mark.parametrize("url", ["mysql://db/x", "db:5432", "postgresql://"])
def test_other_database_urls_stop_the_start_without_echoing_the_password(url):
    with pytest.raises(SettingError) as refused:
        load_settings("api", {"ANOMALYZE_DATABASE_URL": url})
    assert "ANOMALYZE_DATABASE_URL=(hidden)" in str(refused.value)


@pytest.mark.parametrize(("url", "expected"), [("s3://bucket", "s3://bucket"),
                                               ("s3://my-bucket/a/b/", "s3://my-bucket/a/b")])
def test_store_urls_are_accepted(url, expected):
    assert load_settings("api", {"ANOMALYZE_STORE_URL": url})["STORE_URL"] == expected


@pytest.mark.parametrize("url", ["bucket/prefix", "s3://", "s3://UPPER/x", "https://bucket/x"])
def test_other_store_urls_stop_the_start(url):
    with pytest.raises(SettingError, match="ANOMALYZE_STORE_URL"):
        load_settings("api", {"ANOMALYZE_STORE_URL": url})


def test_a_store_without_a_database_stops_the_start_naming_both(tmp_path):
    with pytest.raises(BackendConfigError, match="ANOMALYZE_DATABASE_URL"):
        create_app({"STORE_URL": "s3://bucket/x", "DATABASE_URL": None,
                    "DATA_DIR": tmp_path / "data"})


def test_without_urls_health_reports_the_embedded_backends(tmp_path):
    app = create_app({"DATA_DIR": tmp_path / "data", "DATABASE_URL": None, "STORE_URL": None})
    health = app.test_client().get("/health").get_json()
    assert health["backends"] == {"registry": {"kind": "sqlite", "reachable": True},
                                  "store": {"kind": "local", "reachable": True}}
