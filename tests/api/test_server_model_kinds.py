"""One current model per input kind: a holder per kind, each upload scored by the model of its
kind (the KDD model, with a warning, while no Zeek model exists), the per-kind maps of
/health, /api/model-info and /api/retrain/status, rollback per kind, hot reload per kind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from server import create_app
from server.model_holder import ModelHolder, ModelUnavailable
from tests.helpers.api_calls import assert_json_error, upload
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.models import train_zeek_model
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.model_store import (
    MODEL_FILE,
    LocalModelStore,
    kind_model_dir,
    load_model,
)
from utils.readers import read_records
from utils.registry import SQLiteRegistry
from utils.training import train

TOKEN = "kinds-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def zeek_models(tmp_path_factory) -> tuple[Path, Path]:
    """The Zeek folders of two small Zeek models of different versions."""
    first = train_zeek_model(tmp_path_factory.mktemp("zeek-a"), seed=0)
    second = train_zeek_model(tmp_path_factory.mktemp("zeek-b"), seed=1)
    assert load_model(first).version != load_model(second).version
    return first, second


@pytest.fixture
def folder(tmp_path, model_dir, zeek_models) -> Path:
    """A model folder with the small KDD model and a Zeek model in its ``zeek/`` folder."""
    target = shutil.copytree(model_dir, tmp_path / "models")
    shutil.copytree(zeek_models[0], kind_model_dir(target, "zeek"))
    return target


@pytest.fixture
def kdd_only(tmp_path, model_dir) -> Path:
    return shutil.copytree(model_dir, tmp_path / "kdd-only")


def client_on(model_dir: Path, data_dir: Path, **config):
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0, "RETRAIN_THRESHOLD": 0,
                       "ADMIN_TOKEN": TOKEN, **config}).test_client()


@pytest.fixture
def zeek_log() -> bytes:
    return tsv_log(conn_rows(400, seed=9, rate=5.0))


def replace_model(source_dir: Path, target_dir: Path) -> None:
    """Swap a model file in atomically, as save_model does."""
    tmp = target_dir / f".{MODEL_FILE}.incoming"
    shutil.copyfile(source_dir / MODEL_FILE, tmp)
    os.replace(tmp, target_dir / MODEL_FILE)


# --- the holders ----------------------------------------------------------------------------


def test_each_kind_has_a_holder_on_its_own_folder(folder, zeek_models):
    kdd = ModelHolder(folder, check_interval=0.0)
    zeek = ModelHolder(folder, kind="zeek", check_interval=0.0)
    assert (kdd.model_dir, zeek.model_dir) == (folder, folder / "zeek")
    assert kdd.current().version == load_model(folder).version
    assert zeek.current().version == load_model(zeek_models[0]).version
    assert zeek.current().card["input_kind"] == "zeek"


def test_a_kind_without_a_model_has_neither_a_model_nor_an_error(kdd_only):
    holder = ModelHolder(kdd_only, kind="zeek", check_interval=0.0)
    assert holder.status() == (None, None)
    with pytest.raises(ModelUnavailable, match="none has been trained yet"):
        holder.current()


def test_an_unknown_kind_is_refused(kdd_only):
    with pytest.raises(ValueError, match="kdd, zeek"):
        ModelHolder(kdd_only, kind="netflow")


# --- routing --------------------------------------------------------------------------------


def test_each_upload_is_scored_by_the_model_of_its_kind(folder, tmp_path, zeek_log):
    client = client_on(folder, tmp_path / "data")
    kdd_version, zeek_version = load_model(folder).version, load_model(folder / "zeek").version
    for data, name, kind, version in ((synthetic_kdd(40, 10, seed=3), "t.txt", "kdd",
                                       kdd_version),
                                      (zeek_log, "conn.log", "zeek", zeek_version)):
        response = upload(client, data, name)
        assert response.status_code == 200, response.get_json()
        summary = response.get_json()["summary"]
        assert summary["model"] == {"version": version, "input_kind": kind}
        assert summary["model_version"] == version == response.headers["X-Model-Version"]
        assert summary["input_kind"] == kind
        assert summary["warnings"] == []


def test_the_zeek_model_scores_the_csv_ndjson_and_overview_answers_too(folder, tmp_path,
                                                                       zeek_log):
    client = client_on(folder, tmp_path / "data")
    zeek_version = load_model(folder / "zeek").version
    body = upload(client, zeek_log, "conn.log").get_json()
    assert body["hosts"]["complete"] is True and body["timeline"]["bin_seconds"] == 60
    as_csv = upload(client, zeek_log, "conn.log", "?format=csv")
    assert as_csv.headers["X-Model-Version"] == zeek_version
    lines = as_csv.get_data(as_text=True).splitlines()
    assert len(lines) == 401 and "id.orig_h" in lines[0]
    alerts = upload(client, zeek_log, "conn.log", "?format=ndjson")
    assert alerts.headers["X-Model-Version"] == zeek_version
    documents = [json.loads(line) for line in alerts.get_data(as_text=True).splitlines()]
    assert documents, "the Zeek model flags some of this log"
    assert {d["anomalyze"]["model_version"] for d in documents} == {zeek_version}
    assert len(documents) == body["summary"]["alerts"]


def test_a_gzipped_zeek_upload_goes_to_the_zeek_model(folder, tmp_path, zeek_log):
    import gzip

    response = upload(client_on(folder, tmp_path / "data"), gzip.compress(zeek_log),
                      "conn.log.gz")
    assert response.get_json()["summary"]["model"]["input_kind"] == "zeek"


def test_without_a_zeek_model_the_kdd_model_scores_it_and_says_how_to_get_one(
        kdd_only, tmp_path, zeek_log):
    client = client_on(kdd_only, tmp_path / "data")
    response = upload(client, zeek_log, "conn.log")
    summary = response.get_json()["summary"]
    kdd_version = load_model(kdd_only).version
    assert summary["model"] == {"version": kdd_version, "input_kind": "kdd"}
    assert response.headers["X-Model-Version"] == kdd_version
    (warning,) = summary["warnings"]
    assert warning["code"] == "input_kind_mismatch"
    assert "No Zeek model exists on this server yet" in warning["message"]
    assert '"Train a baseline for your network"' in warning["message"]
    assert warning["command"] == "python train_model.py --train conn.log"


def test_a_zeek_model_that_cannot_be_loaded_leaves_zeek_files_to_the_kdd_model(
        kdd_only, tmp_path, zeek_log):
    (kdd_only / "zeek").mkdir()
    (kdd_only / "zeek" / MODEL_FILE).write_bytes(b"not a model")
    client = client_on(kdd_only, tmp_path / "data")
    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded"
    assert body["model_error"] is None  # the KDD model is fine
    assert body["models"]["zeek"]["version"] is None
    assert "corrupt" in body["models"]["zeek"]["error"]
    assert str(tmp_path) not in json.dumps(body)
    summary = upload(client, zeek_log, "conn.log").get_json()["summary"]
    assert summary["model"]["input_kind"] == "kdd"
    assert summary["warnings"][0]["code"] == "input_kind_mismatch"


def test_a_zeek_model_alone_scores_zeek_files_but_kdd_files_get_a_503(
        tmp_path, zeek_models, zeek_log):
    folder = tmp_path / "zeek-only"
    shutil.copytree(zeek_models[0], kind_model_dir(folder, "zeek"))
    client = client_on(folder, tmp_path / "data")
    assert upload(client, zeek_log, "conn.log").get_json()["summary"]["model"][
        "input_kind"] == "zeek"
    assert_json_error(upload(client, synthetic_kdd(20, 5)), 503, "model_unavailable")
    assert client.get("/health").status_code == 503  # the KDD model is the one required


def test_predict_json_records_are_kdd_records_for_the_kdd_model(folder, tmp_path):
    client = client_on(folder, tmp_path / "data")
    response = client.post("/api/predict-json",
                           json={"records": [[0, "tcp", "http", "SF"] + [0] * 37]})
    assert response.get_json()["summary"]["model"] == {
        "version": load_model(folder).version, "input_kind": "kdd"}


# --- /health, /api/model-info, /api/retrain/status -------------------------------------------


def test_health_lists_the_model_of_every_kind(folder, tmp_path):
    body = client_on(folder, tmp_path / "data").get("/health").get_json()
    assert body["status"] == "ok"
    assert body["models"] == {
        "kdd": {"version": load_model(folder).version, "error": None},
        "zeek": {"version": load_model(folder / "zeek").version, "error": None}}


def test_a_kind_without_a_model_is_normal_for_health(kdd_only, tmp_path):
    response = client_on(kdd_only, tmp_path / "data").get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["models"]["zeek"] == {"version": None, "error": None}


def test_model_info_lists_every_kind_with_the_kdd_model_at_the_top(folder, kdd_only, tmp_path):
    body = client_on(folder, tmp_path / "data").get("/api/model-info").get_json()
    top = {key: value for key, value in body.items() if key not in ("success", "models")}
    assert body["models"]["kdd"] == top
    zeek = body["models"]["zeek"]
    assert zeek.keys() == top.keys()
    assert (zeek["model_version"], zeek["input_kind"], zeek["n_models"]) == (
        load_model(folder / "zeek").version, "zeek", 3)
    assert zeek["training_data"]["file"] == "conn.log"
    alone = client_on(kdd_only, tmp_path / "data2").get("/api/model-info").get_json()
    assert alone["models"]["zeek"] is None


def test_retrain_status_lists_versions_and_the_current_model_of_every_kind(folder, tmp_path):
    body = client_on(folder, tmp_path / "data").get("/api/retrain/status").get_json()
    zeek_version = load_model(folder / "zeek").version
    assert body["model_versions"] == {"kdd": load_model(folder).version, "zeek": zeek_version}
    assert body["versions_by_kind"]["kdd"] == body["versions"] == []  # KDD: none archived
    assert [v["version"] for v in body["versions_by_kind"]["zeek"]] == [zeek_version]


# --- hot reload per kind --------------------------------------------------------------------


def test_a_new_zeek_model_is_served_at_once_while_the_kdd_model_stays(
        folder, tmp_path, zeek_models, zeek_log):
    client = client_on(folder, tmp_path / "data")
    kdd_version = load_model(folder).version
    replace_model(zeek_models[1], folder / "zeek")
    new = load_model(zeek_models[1]).version
    assert upload(client, zeek_log, "conn.log").get_json()["summary"]["model_version"] == new
    assert upload(client, synthetic_kdd(20, 5)).get_json()["summary"]["model_version"] == (
        kdd_version)
    assert client.get("/health").get_json()["models"]["zeek"]["version"] == new


def test_the_first_zeek_model_is_picked_up_without_a_restart(kdd_only, tmp_path, zeek_models,
                                                             zeek_log):
    client = client_on(kdd_only, tmp_path / "data")
    assert upload(client, zeek_log, "conn.log").get_json()["summary"]["warnings"]
    shutil.copytree(zeek_models[0], kdd_only / "zeek")
    summary = upload(client, zeek_log, "conn.log").get_json()["summary"]
    assert summary["model"] == {"version": load_model(zeek_models[0]).version,
                                "input_kind": "zeek"}
    assert summary["warnings"] == []


# --- rollback per kind ----------------------------------------------------------------------


def promote_second_zeek_model(folder: Path, uploads: list[str]) -> str:
    """Train a second Zeek model whose card names ``uploads`` as learned from, keep it and
    make it current in ``folder``'s Zeek store; its version."""
    records = read_records(tsv_log(conn_rows(1500, seed=4, rate=5.0)))
    result = train(records, n_clusters=(3, 4, 5), random_state=4,
                   source={"file": "conn.log", "uploads": {"sha256": uploads}})
    store = LocalModelStore(kind_model_dir(folder, "zeek"))
    version = store.keep(result.pipeline, result.card)
    store.promote(version)
    return version


def rollback(client, body: dict | None = None):
    return client.post("/api/models/rollback", headers=ADMIN,
                       data=json.dumps(body) if body is not None else b"",
                       content_type="application/json")


def test_rolling_back_the_zeek_model_leaves_the_kdd_model_and_every_upload_alone(
        folder, tmp_path, zeek_log):
    data_dir = tmp_path / "data"
    client = client_on(folder, data_dir)
    kdd_sha = upload(client, synthetic_kdd(40, 10, seed=5)).get_json()["summary"]["sha256"]
    zeek_sha = upload(client, zeek_log, "conn.log").get_json()["summary"]["sha256"]
    first = load_model(folder / "zeek").version
    second = promote_second_zeek_model(folder, [kdd_sha, zeek_sha])
    kdd_bytes_before = (folder / MODEL_FILE).read_bytes()
    assert client.get("/health").get_json()["models"]["zeek"]["version"] == second

    response = rollback(client, {"kind": "zeek"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"success": True, "previous_version": second,
                                   "model_version": first, "quarantined": []}
    assert (folder / MODEL_FILE).read_bytes() == kdd_bytes_before
    assert {u.status for u in SQLiteRegistry(data_dir).uploads()} == {"pending"}
    health = client.get("/health").get_json()
    assert health["models"] == {"kdd": {"version": load_model(folder).version, "error": None},
                                "zeek": {"version": first, "error": None}}
    assert upload(client, zeek_log, "conn.log").headers["X-Model-Version"] == first


def test_rolling_back_the_kdd_model_leaves_the_zeek_model_alone(folder, tmp_path,
                                                                other_model_dir):
    client = client_on(folder, tmp_path / "data")
    old = load_model(folder).version
    store = LocalModelStore(folder)
    newer = load_model(other_model_dir)
    store.keep(newer.pipeline, newer.card)
    store.promote(newer.version)
    zeek_before = (folder / "zeek" / MODEL_FILE).read_bytes()

    response = rollback(client)  # no body: the KDD model
    assert response.get_json()["model_version"] == old
    assert response.get_json()["previous_version"] == newer.version
    assert (folder / "zeek" / MODEL_FILE).read_bytes() == zeek_before
    assert client.get("/health").get_json()["model_version"] == old
    again = rollback(client, {"kind": "kdd", "version": newer.version})
    assert again.get_json()["model_version"] == newer.version


def test_a_zeek_rollback_names_only_zeek_versions(folder, tmp_path, other_model_dir):
    newer = load_model(other_model_dir)
    LocalModelStore(folder).keep(newer.pipeline, newer.card)  # a KDD version, not Zeek's
    response = rollback(client_on(folder, tmp_path / "data"),
                        {"kind": "zeek", "version": newer.version})
    assert_json_error(response, 404, "not_found")


@pytest.mark.parametrize("kind", ["netflow", 5, ""])
def test_rollback_of_an_unknown_kind_is_a_400_naming_the_kinds(folder, tmp_path, kind):
    body = assert_json_error(rollback(client_on(folder, tmp_path / "data"), {"kind": kind}),
                             400, "invalid_value")
    assert "kdd, zeek" in body["error"]
    assert body["problems"][0]["field"] == "kind"


def test_rolling_back_a_kind_without_a_model_is_a_conflict(kdd_only, tmp_path):
    assert_json_error(rollback(client_on(kdd_only, tmp_path / "data"), {"kind": "zeek"}),
                      409, "conflict")


def test_a_kdd_upload_to_a_zeek_only_folder_is_refused_before_it_is_kept(tmp_path,
                                                                          zeek_models):
    folder = tmp_path / "zeek-only"
    shutil.copytree(zeek_models[0], kind_model_dir(folder, "zeek"))
    data_dir = tmp_path / "data"
    upload(client_on(folder, data_dir), synthetic_kdd(20, 5))
    assert SQLiteRegistry(data_dir).uploads() == []
