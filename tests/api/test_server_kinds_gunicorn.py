"""A model per input kind under real gunicorn (two workers): KDD and Zeek files each answered
by their own model on every worker, a new Zeek model picked up while the KDD model stays, and
the Zeek model rolled back on its own."""

from __future__ import annotations

import shutil

import pytest
import requests

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.models import train_zeek_model
from tests.helpers.servers import HTTP_TIMEOUT, Gunicorn, fresh_upload
from tests.helpers.waiting import poll
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.model_store import LocalModelStore, load_model

pytestmark = pytest.mark.e2e

TOKEN = "kinds-gunicorn-token"
ROUNDS = 6  # uploads per kind, each on a new connection: both workers answer some


def answered_by(server: Gunicorn, data: bytes, name: str) -> set[tuple[str, str, str]]:
    """(X-Model-Version, summary.model.version, summary.model.input_kind) of ROUNDS uploads."""
    seen = set()
    for _ in range(ROUNDS):
        response = fresh_upload(server, data, name)
        assert response.status_code == 200, response.text[:500]
        model = response.json()["summary"]["model"]
        seen.add((response.headers["X-Model-Version"], model["version"], model["input_kind"]))
    return seen


def test_each_kind_is_answered_by_its_own_model_and_rolls_back_alone(model_dir, tmp_path):
    served = shutil.copytree(model_dir, tmp_path / "model")
    zeek_folder = train_zeek_model(served, seed=0)
    kdd_version = load_model(served).version
    first = load_model(zeek_folder).version
    kdd_file = synthetic_kdd(60, 20, seed=11)
    zeek_file = tsv_log(conn_rows(500, seed=12, rate=5.0))
    server = Gunicorn(tmp_path, {"ANOMALYZE_MODEL_DIR": str(served),
                                "ANOMALYZE_DATA_DIR": str(tmp_path / "data"),
                                "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.2",
                                "ANOMALYZE_ADMIN_TOKEN": TOKEN})
    try:
        assert answered_by(server, kdd_file, "t.txt") == {(kdd_version, kdd_version, "kdd")}
        assert answered_by(server, zeek_file, "conn.log") == {(first, first, "zeek")}

        second_dir = train_zeek_model(tmp_path / "second", seed=1)
        second = load_model(second_dir)
        store = LocalModelStore(zeek_folder)
        store.promote(store.keep(second.pipeline, second.card))
        poll(lambda: answered_by(server, zeek_file, "conn.log")
             == {(second.version, second.version, "zeek")},
             "every worker to answer Zeek files with the new Zeek model", deadline=20.0)
        assert answered_by(server, kdd_file, "t.txt") == {(kdd_version, kdd_version, "kdd")}

        rolled = requests.post(f"{server.url}/api/models/rollback", json={"kind": "zeek"},
                               headers={"Authorization": f"Bearer {TOKEN}"},
                               timeout=HTTP_TIMEOUT)
        assert rolled.status_code == 200, rolled.text
        assert rolled.json() == {"success": True, "previous_version": second.version,
                                 "model_version": first, "quarantined": []}
        poll(lambda: answered_by(server, zeek_file, "conn.log") == {(first, first, "zeek")},
             "every worker to answer Zeek files with the rolled-back Zeek model",
             deadline=20.0)
        assert answered_by(server, kdd_file, "t.txt") == {(kdd_version, kdd_version, "kdd")}
        health = requests.get(f"{server.url}/health", timeout=HTTP_TIMEOUT).json()
        assert health["status"] == "ok"
        assert health["models"] == {"kdd": {"version": kdd_version, "error": None},
                                    "zeek": {"version": first, "error": None}}
    finally:
        server.stop()
