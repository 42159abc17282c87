"""Every JSON example in docs/API.md has the keys of a real response, and only those.

Each ```json block in docs/API.md follows a marker naming what it shows, such as
`<!-- example: GET /health -->`. RESPONSES below produces that real response with the
committed model through the Flask test client, and the two are compared key by key, all the
way down. A new example needs its marker and an entry in RESPONSES; a new field in a response
fails here until the docs show it.

How an example is read:
- an object lists exactly the response's keys, unless it holds a "…" key: then the keys it
  lists must exist, and the response may have more;
- in an array, "…" after a first item means "more of the same"; each documented item is
  compared with the response's item at the same place (or its last, if it has fewer);
- null on either side matches anything (which fields may be null is said in the prose);
- otherwise both must be the same kind of JSON value (object, array, string, number, boolean).
Enumerated values the response carries (outcome, error_type, ...) must be named in the docs.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server import create_app
from tests.helpers.waiting import poll
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.schema import FEATURE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
API_DOC = REPO_ROOT / "docs" / "API.md"
PLACEHOLDER = "…"
EXAMPLE = re.compile(
    r"^[ \t]*<!--[ \t]*example:[ \t]*(?P<case>[^\n]*?)[ \t]*-->[ \t]*\n"
    r"[ \t]*```json[ \t]*\n(?P<body>.*?)\n[ \t]*```", re.MULTILINE | re.DOTALL)
JSON_BLOCK = re.compile(r"^[ \t]*```json\b", re.MULTILINE)
ENUMERATED_FIELDS = ("outcome", "triggered_by", "error_type", "severity", "input_kind")
ADMIN_TOKEN = "docs-example-token"
ANALYST_TOKEN = "docs-example-analyst-token"
RETRAIN_TIMEOUT = 300.0


def documented_examples() -> dict[str, Any]:
    text = API_DOC.read_text()
    return {match["case"]: json.loads(match["body"]) for match in EXAMPLE.finditer(text)}


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def mismatches(documented: Any, real: Any, path: str = "$") -> list[str]:
    """Where `real` departs from the `documented` example (the rules in the module doc)."""
    if documented is None or real is None:
        return []
    if kind(documented) != kind(real):
        return [f"{path}: documented as {kind(documented)}, the response has {kind(real)}"]
    if isinstance(documented, dict):
        listed = documented.keys() - {PLACEHOLDER}
        found = [f"{path}.{key}: documented, not in the response"
                 for key in sorted(listed - real.keys())]
        if PLACEHOLDER not in documented:
            found += [f"{path}.{key}: in the response, not documented"
                      for key in sorted(real.keys() - listed)]
        for key in sorted(listed & real.keys()):
            found += mismatches(documented[key], real[key], f"{path}.{key}")
        return found
    if isinstance(documented, list):
        items = [item for i, item in enumerate(documented) if i == 0 or item != PLACEHOLDER]
        if items and not real:
            return [f"{path}: documented with items, the response's array is empty"]
        found = []
        for i, item in enumerate(items):
            found += mismatches(item, real[min(i, len(real) - 1)], f"{path}[{i}]")
        return found
    return []


def enumerated_values(value: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ENUMERATED_FIELDS and isinstance(item, str):
                found.add((key, item))
            found |= enumerated_values(item)
    elif isinstance(value, list):
        for item in value:
            found |= enumerated_values(item)
    return found


# -- the real responses -----------------------------------------------------------------------


def kdd_line(**values: str) -> str:
    defaults = {"protocol_type": "tcp", "service": "http", "flag": "SF"}
    return ",".join(values.get(name, defaults.get(name, "0")) for name in FEATURE_NAMES)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The API on a snapshot of the committed model, its uploads in a temp folder."""
    root = tmp_path_factory.mktemp("doc-examples")
    model_dir = shutil.copytree(REPO_ROOT / "models", root / "models")
    app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": root / "data",
                      "MODEL_CHECK_INTERVAL": 0.0})
    return app.test_client()


def health(request) -> tuple[int, Any]:
    response = request.getfixturevalue("client").get("/health")
    return response.status_code, response.get_json()


def model_info(request) -> tuple[int, Any]:
    response = request.getfixturevalue("client").get("/api/model-info")
    return response.status_code, response.get_json()


def predict_labelled_file(request) -> tuple[int, Any]:
    path = request.getfixturevalue("kdd_test_path")
    with path.open("rb") as handle:
        response = request.getfixturevalue("client").post(
            "/api/predict", data={"file": (handle, path.name)},
            content_type="multipart/form-data")
    return response.status_code, response.get_json()


def predict_zeek_log(request) -> tuple[int, Any]:
    """A labelled Zeek conn.log (generated) scored by the committed KDD model."""
    body = tsv_log(conn_rows(3000, seed=5, rate=2.0))
    response = request.getfixturevalue("client").post(
        "/api/predict", data={"file": (io.BytesIO(body), "conn.log")},
        content_type="multipart/form-data")
    return response.status_code, response.get_json()


def predict_bad_value(request) -> tuple[int, Any]:
    lines = [kdd_line()] * 16 + [kdd_line(src_bytes="abc")]
    body = ("\n".join(lines) + "\n").encode()
    response = request.getfixturevalue("client").post(
        "/api/predict", data={"file": (io.BytesIO(body), "bad.txt")},
        content_type="multipart/form-data")
    return response.status_code, response.get_json()


@pytest.fixture(scope="module")
def learning_answers(tmp_path_factory, kdd_train20_path) -> dict[str, tuple[int, Any]]:
    """The learning routes' answers around a real background retrain that was promoted.

    One anonymous upload is kept, ``POST /api/retrain`` runs a real retrain process (kept
    short through its documented settings: a 3,000-row training file and small k; tolerances
    of 1 promote whatever it trains), then the new version is rolled back, which quarantines
    the upload, and the upload is released. Each answer is recorded when it is given.
    """
    root = tmp_path_factory.mktemp("doc-examples-learning")
    with kdd_train20_path.open() as source:
        lines = [line for _, line in zip(range(3200), source, strict=False)]
    train_file = root / "train.txt"
    train_file.write_text("".join(lines[:3000]))
    upload = "".join(lines[3000:]).encode()
    model_dir = shutil.copytree(REPO_ROOT / "models", root / "models")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answers: dict[str, tuple[int, Any]] = {}

    def record(case: str, response) -> Any:
        answers[case] = response.status_code, response.get_json()
        return response.get_json()

    with pytest.MonkeyPatch.context() as monkeypatch:  # the retrain process inherits these
        monkeypatch.setenv("ANOMALYZE_RETRAIN_TRAIN_FILE", str(train_file))
        monkeypatch.setenv("ANOMALYZE_RETRAIN_K", "4,6,8")
        monkeypatch.setenv("ANOMALYZE_RETRAIN_TOLERANCE", "1")
        monkeypatch.setenv("ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE", "1")
        app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": root / "data",
                          "MODEL_CHECK_INTERVAL": 0.0, "ADMIN_TOKEN": ADMIN_TOKEN})
        client = app.test_client()
        kept = client.post("/api/predict", data={"file": (io.BytesIO(upload), "upload.txt")},
                           content_type="multipart/form-data").get_json()
        assert kept["summary"]["stored"], kept
        started = client.post("/api/retrain", headers=admin)
        assert started.status_code == 202, started.get_json()

        def finished() -> Any:
            status = client.get("/api/retrain/status").get_json()
            runs = status["last_runs"]
            return status if runs and not status["running"] and runs[0]["finished_at"] else None

        poll(finished, "the retrain run to finish", deadline=RETRAIN_TIMEOUT, interval=0.5)
    status = record("GET /api/retrain/status", client.get("/api/retrain/status"))
    assert status["last_runs"][0]["outcome"] == "promoted", status["last_runs"][0]
    record("GET /api/retrain/runs", client.get("/api/retrain/runs?limit=1"))
    rolled_back = record("POST /api/models/rollback",
                         client.post("/api/models/rollback", headers=admin))
    assert rolled_back["quarantined"] == [kept["summary"]["sha256"]], rolled_back
    record("GET /api/uploads/quarantined", client.get("/api/uploads/quarantined", headers=admin))
    record("POST /api/uploads/<sha256>/release",
           client.post(f"/api/uploads/{kept['summary']['sha256']}/release", headers=admin))
    return answers


def learning_answer(case: str) -> Callable[[pytest.FixtureRequest], tuple[int, Any]]:
    return lambda request: request.getfixturevalue("learning_answers")[case]


LEARNING_CASES = ("GET /api/retrain/status", "GET /api/retrain/runs",
                  "POST /api/models/rollback", "GET /api/uploads/quarantined",
                  "POST /api/uploads/<sha256>/release")


@pytest.fixture(scope="module")
def analyst_answers(tmp_path_factory) -> dict[str, tuple[int, Any]]:
    """The allow-list and feedback routes' answers, on a kept upload of generated rows."""
    root = tmp_path_factory.mktemp("doc-examples-analyst")
    app = create_app({"TESTING": True, "MODEL_DIR": REPO_ROOT / "models",
                      "DATA_DIR": root / "data", "ANALYST_TOKEN": ANALYST_TOKEN})
    client = app.test_client()
    analyst = {"Authorization": f"Bearer {ANALYST_TOKEN}"}
    answers: dict[str, tuple[int, Any]] = {}

    def record(case: str, response) -> Any:
        answers[case] = response.status_code, response.get_json()
        return response.get_json()

    combination = {"source": "10.0.0.5", "destination": "10.0.0.9", "service": "dns",
                   "reason": "internal resolver"}
    record("POST /api/allowlist", client.post("/api/allowlist", json=combination,
                                              headers=analyst))
    record("POST /api/allowlist 409", client.post("/api/allowlist", json=combination,
                                                  headers=analyst))
    client.post("/api/allowlist", headers=analyst, json={
        "host": "10.0.0.0/24", "reason": "backup servers", "expires_at": "2999-01-01"})
    record("GET /api/allowlist", client.get("/api/allowlist", headers=analyst))
    log = tsv_log(conn_rows(20))
    kept = client.post("/api/predict", data={"file": (io.BytesIO(log), "conn.log")},
                       content_type="multipart/form-data").get_json()
    record("POST /api/feedback", client.post("/api/feedback", headers=analyst, json={
        "sha256": kept["summary"]["sha256"], "records": [3, 4], "verdict": "false_positive",
        "note": "nightly backup"}))
    record("GET /api/feedback", client.get("/api/feedback", headers=analyst))
    return answers


def analyst_answer(case: str) -> Callable[[pytest.FixtureRequest], tuple[int, Any]]:
    return lambda request: request.getfixturevalue("analyst_answers")[case]


ANALYST_CASES = ("GET /api/allowlist", "POST /api/allowlist", "POST /api/allowlist 409",
                 "POST /api/feedback", "GET /api/feedback")


@pytest.fixture(scope="module")
def baseline_answers(tmp_path_factory) -> dict[str, tuple[int, Any]]:
    """The baseline routes' answers: a job queued on a generated conn.log, run in-process by
    the job runner with a stand-in trainer whose health report warns (so it is held), then
    promoted; and a KDD file refused."""
    from server.baseline import BaselineLauncher
    from tests.helpers.baseline_fakes import Fakes
    from utils.baseline.jobs import run_baseline_job

    root = tmp_path_factory.mktemp("doc-examples-baseline")
    model_dir = shutil.copytree(REPO_ROOT / "models", root / "models")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answers: dict[str, tuple[int, Any]] = {}

    def record(case: str, response) -> Any:
        answers[case] = response.status_code, response.get_json()
        return response.get_json()

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(BaselineLauncher, "launch", lambda self, job_id: os.getpid())
        app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": root / "data",
                          "MODEL_CHECK_INTERVAL": 0.0, "ADMIN_TOKEN": ADMIN_TOKEN})
        client = app.test_client()
        log = tsv_log(conn_rows(3000, seed=5, rate=2.0))
        job = record("POST /api/models/baseline", client.post(
            "/api/models/baseline", headers=admin,
            data={"files": (io.BytesIO(log), "conn.log")},
            content_type="multipart/form-data"))["job"]
        record("POST /api/models/baseline 400", client.post(
            "/api/models/baseline", headers=admin,
            data={"files": (io.BytesIO((kdd_line() + "\n").encode()), "week.txt")},
            content_type="multipart/form-data"))
    fakes = Fakes(warnings=[{"code": "scanner", "message": "10.0.0.5 reached 400 hosts",
                             "hosts": ["10.0.0.5"]}])
    run_baseline_job(job["id"], registry=app.extensions["anomalyze.uploads"].registry,
                     model_dir=model_dir, data_dir=root / "data", trainer=fakes.trainer,
                     reporter=fakes.reporter, gate=fakes.gate,
                     contamination=fakes.contamination)
    record("GET /api/models/baseline/<id>",
           client.get(f"/api/models/baseline/{job['id']}", headers=admin))
    record("POST /api/models/baseline/<id>/promote",
           client.post(f"/api/models/baseline/{job['id']}/promote", headers=admin))
    return answers


def baseline_answer(case: str) -> Callable[[pytest.FixtureRequest], tuple[int, Any]]:
    return lambda request: request.getfixturevalue("baseline_answers")[case]


BASELINE_CASES = ("POST /api/models/baseline", "POST /api/models/baseline 400",
                  "GET /api/models/baseline/<id>", "POST /api/models/baseline/<id>/promote")


RESPONSES: dict[str, Callable[[pytest.FixtureRequest], tuple[int, Any]]] = {
    "GET /health": health,
    "GET /api/model-info": model_info,
    "POST /api/predict": predict_labelled_file,
    "POST /api/predict zeek": predict_zeek_log,
    "POST /api/predict 400": predict_bad_value,
    **{case: learning_answer(case) for case in LEARNING_CASES},
    **{case: analyst_answer(case) for case in ANALYST_CASES},
    **{case: baseline_answer(case) for case in BASELINE_CASES},
}
EXPECTED_STATUS = {"POST /api/predict 400": 400, "POST /api/allowlist": 201,
                   "POST /api/allowlist 409": 409, "POST /api/feedback": 201,
                   "POST /api/models/baseline": 202, "POST /api/models/baseline 400": 400}
SLOW = set(LEARNING_CASES)  # start a real retrain process


# -- the tests --------------------------------------------------------------------------------


def test_every_json_example_says_what_it_documents():
    text = API_DOC.read_text()
    cases = [match["case"] for match in EXAMPLE.finditer(text)]
    assert len(cases) == len(JSON_BLOCK.findall(text)), (
        "a ```json block in docs/API.md lacks its <!-- example: ... --> marker")
    assert len(set(cases)) == len(cases), "two examples share a marker"
    assert sorted(set(cases) - RESPONSES.keys()) == [], (
        "add these examples to RESPONSES in this test")


def test_the_comparison_catches_what_it_should():
    assert mismatches({"a": 1, "b": "x"}, {"a": 2, "b": "y"}) == []
    assert mismatches({"a": 1}, {"a": 1, "b": 2}) == ["$.b: in the response, not documented"]
    assert mismatches({"a": 1, "b": 2}, {"a": 1}) == ["$.b: documented, not in the response"]
    assert mismatches({"a": 1, PLACEHOLDER: PLACEHOLDER}, {"a": 1, "b": 2}) == []
    assert mismatches({"v": [PLACEHOLDER]}, {"v": [{"version": "x"}]}) == [
        "$.v[0]: documented as string, the response has object"]
    assert mismatches([{"a": 1}, PLACEHOLDER], [{"a": 1}, {"a": 2}]) == []
    assert mismatches({"e": None}, {"e": "boom"}) == []


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=[pytest.mark.slow] if case in SLOW else [])
    for case in documented_examples()])
def test_example_has_the_keys_of_a_real_response(case, request):
    documented = documented_examples()[case]
    status, real = RESPONSES[case](request)
    assert status == EXPECTED_STATUS.get(case, 200), real
    assert mismatches(documented, real) == []
    text = API_DOC.read_text()
    undocumented = sorted((field, value) for field, value in enumerated_values(real)
                          if f"`{value}`" not in text and f'"{value}"' not in text)
    assert undocumented == [], "values the docs never name"
