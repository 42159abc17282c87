"""No one let in: admin tokens, CORS origins, formula injection in the CSV export, error bodies
without paths or tracebacks, debug mode never on (Flask test client and a fresh interpreter).

Size limits against real gunicorn and the routes that must not serve files are in
test_robust_gunicorn.py."""

from __future__ import annotations

import csv
import hmac
import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from robust_helpers import (
    FORBIDDEN_TARGETS,
    GENERIC_500,
    REPO_ROOT,
    assert_json_error,
    kdd_line,
    make_app,
    normal_values,
    stored_files,
    synthetic_kdd,
    upload,
)

from server.retrain import RetrainLauncher

TOKEN = "robustness-admin-token-0123456789"
ADMIN_ROUTES = ["/api/retrain", "/api/models/rollback"]


@pytest.fixture
def launches(monkeypatch) -> list[str]:
    """No retrain process is ever started from here: the launcher only records."""
    calls: list[str] = []
    monkeypatch.setattr(RetrainLauncher, "launch", lambda self, trigger: calls.append(trigger))
    return calls


# --- admin endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_ROUTES)
def test_admin_routes_are_404_disabled_without_a_configured_token(model_dir, data_dir, path,
                                                                   launches):
    for configured in (None, ""):
        client = make_app(model_dir, data_dir, ADMIN_TOKEN=configured).test_client()
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}"}):
            assert_json_error(client.post(path, headers=headers), 404, "disabled")
    assert launches == []


BAD_AUTHORIZATIONS = [
    (None, 401), ("", 401), ("Bearer", 401), ("Bearer ", 401), ("Bearer    ", 401),
    (f"Basic {TOKEN}", 401), (TOKEN, 401), (f"Token {TOKEN}", 401),
    ("Bearer wrong", 403), (f"Bearer {TOKEN.upper()}", 403), (f"Bearer {TOKEN[:-1]}", 403),
    (f"Bearer {TOKEN}x", 403), (f"Bearer {TOKEN[1:]}", 403), (f"Bearer {TOKEN} {TOKEN}", 403),
    (f"Bearer {TOKEN}\x00", 403), ("Bearer \u00e9\u00e8", 403), ("Bearer " + "A" * 10000, 403),
]


@pytest.mark.parametrize("path", ADMIN_ROUTES)
@pytest.mark.parametrize(("authorization", "status"), BAD_AUTHORIZATIONS,
                         ids=[f"{i}-{s}" for i, (_, s) in enumerate(BAD_AUTHORIZATIONS)])
def test_admin_routes_refuse_a_missing_or_wrong_token(model_dir, data_dir, launches, path,
                                                      authorization, status):
    client = make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN).test_client()
    headers = {} if authorization is None else {"Authorization": authorization}
    body = assert_json_error(client.post(path, headers=headers), status,
                             "unauthorized" if status == 401 else "forbidden")
    assert TOKEN not in body["error"]
    assert launches == []


def test_the_token_is_compared_in_constant_time(model_dir, data_dir, launches, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("server.retrain.hmac.compare_digest", spy)
    client = make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN).test_client()
    assert client.post("/api/retrain", headers={"Authorization": "Bearer nope"}).status_code == 403
    ok = client.post("/api/retrain", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 202 and launches == ["api"]
    assert calls == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


# --- failed admin authentications are rate-limited ------------------------------------------


def limited_client(model_dir, data_dir, limit: str = "10 per minute"):
    return make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN, ADMIN_AUTH_LIMIT=limit).test_client()


def test_a_flood_of_wrong_tokens_gets_429_json_and_locks_out_that_address(model_dir, data_dir,
                                                                          launches):
    client = limited_client(model_dir, data_dir)
    statuses = [client.post(ADMIN_ROUTES[i % 2], headers={"Authorization": f"Bearer guess{i}"}
                            ).status_code for i in range(30)]
    assert statuses == [403] * 10 + [429] * 20
    refused = client.post("/api/retrain", headers={"Authorization": "Bearer guess-again"})
    body = assert_json_error(refused, 429, "too_many_requests")
    assert "failed admin authentications" in body["error"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # Inside the window even the right token waits: a guess that hits is not told so.
    assert client.post("/api/retrain", headers={"Authorization": f"Bearer {TOKEN}"}
                       ).status_code == 429
    assert launches == []
    other = client.post("/api/retrain", headers={"Authorization": "Bearer x"},
                        environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 403  # another address has its own count


def test_the_right_token_works_again_after_the_window(model_dir, data_dir, launches):
    client = limited_client(model_dir, data_dir, limit="3 per 2 seconds")
    for i in range(5):
        client.post("/api/retrain", headers={"Authorization": f"Bearer guess{i}"})
    assert client.post("/api/retrain", headers={"Authorization": f"Bearer {TOKEN}"}
                       ).status_code == 429
    time.sleep(2.2)
    assert client.post("/api/retrain", headers={"Authorization": f"Bearer {TOKEN}"}
                       ).status_code == 202
    assert launches == ["api"]


def test_only_failed_authentications_count(model_dir, data_dir, launches):
    client = limited_client(model_dir, data_dir, limit="2 per minute")
    for _ in range(12):  # the right token, many times
        assert client.post("/api/retrain", headers={"Authorization": f"Bearer {TOKEN}"}
                           ).status_code == 202
    for _ in range(12):  # no credentials at all: 401, never limited
        assert client.post("/api/retrain").status_code == 401
    for i in range(3):
        client.post("/api/retrain", headers={"Authorization": f"Bearer guess{i}"})
    assert client.post("/api/retrain", headers={"Authorization": "Bearer guess"}
                       ).status_code == 429
    # Public routes, sent without credentials, are not affected by the lock-out.
    assert upload(client, synthetic_kdd(5, 1)).status_code == 200
    assert client.get("/api/retrain/status").status_code == 200


def test_wrong_tokens_on_uploads_count_as_failed_admin_authentications(model_dir, data_dir,
                                                                       launches):
    """A bearer token on /api/predict asks for a trusted upload: guessing it there is guessing
    the admin token, so it counts towards the same limit as the admin routes."""
    client = limited_client(model_dir, data_dir, limit="3 per minute")
    data = synthetic_kdd(5, 1)
    guesses = [upload(client, data, headers={"Authorization": f"Bearer guess{i}"}).status_code
               for i in range(3)]
    assert guesses == [403] * 3
    assert stored_files(data_dir) == []  # refused before the upload was read
    assert_json_error(client.post("/api/retrain", headers={"Authorization": "Bearer x"}), 429,
                      "too_many_requests")
    # Past the limit a trusted upload waits like an admin call; an anonymous one never does.
    assert upload(client, data, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
    anonymous = upload(client, data)
    assert anonymous.status_code == 200
    assert anonymous.get_json()["summary"]["trusted"] is False
    assert launches == []


def test_the_right_token_on_an_upload_is_not_a_failure(model_dir, data_dir, launches):
    client = limited_client(model_dir, data_dir, limit="2 per minute")
    for i in range(6):
        trusted = upload(client, synthetic_kdd(5, i),
                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert trusted.status_code == 200
        assert trusted.get_json()["summary"]["trusted"] is True


# --- CORS ----------------------------------------------------------------------------------------

CONFIGURED = ("https://ui.example", "https://staging.example:8443")
OTHER_ORIGINS = [
    "https://evil.example", "http://ui.example", "https://ui.example.evil.com",
    "https://evil-ui.example", "https://uiXexample", "https://ui.example:444",
    "https://staging.example", "null", "", "https://ui.example/", "file://",
]


@pytest.fixture
def cors_client(model_dir, data_dir):
    return make_app(model_dir, data_dir, CORS_ORIGINS=CONFIGURED).test_client()


@pytest.mark.parametrize("origin", CONFIGURED)
def test_cors_echoes_a_configured_origin(cors_client, origin):
    response = cors_client.get("/health", headers={"Origin": origin})
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in response.headers.get("Vary", "")
    assert "X-Model-Version" in response.headers["Access-Control-Expose-Headers"]
    preflight = cors_client.options("/api/predict", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == origin


@pytest.mark.parametrize("origin", [None, *OTHER_ORIGINS])
def test_cors_allows_no_other_origin(cors_client, origin):
    """Nor does it name a configured origin to a request that sent none."""
    sent = {} if origin is None else {"Origin": origin}
    for response in (
        cors_client.get("/health", headers=sent),
        upload(cors_client, synthetic_kdd(5, 1), headers=sent),
        cors_client.options("/api/predict", headers={**sent,
                                                     "Access-Control-Request-Method": "POST"}),
    ):
        assert "Access-Control-Allow-Origin" not in response.headers, origin
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_without_configured_origins_no_cors_header_is_ever_sent(client):
    for origin in [*CONFIGURED, *OTHER_ORIGINS]:
        response = client.get("/health", headers={"Origin": origin} if origin else {})
        assert not any(name.startswith("Access-Control-") for name, _ in response.headers)


# --- no route serves files ---------------------------------------------------------------------


def test_no_route_serves_stored_uploads_or_model_files(client, data_dir):
    """The same targets as against gunicorn (test_robust_gunicorn.py), through the test client."""
    data = synthetic_kdd(10, 2, seed=3)
    assert upload(client, data).get_json()["summary"]["stored"] is True
    (name,) = stored_files(data_dir)
    for target in [*FORBIDDEN_TARGETS, f"/uploaded_logs/{name}", f"/data/uploaded_logs/{name}"]:
        for method in (client.get, client.head):
            response = method(target)
            assert response.status_code == 404, target
            assert response.mimetype == "application/json", target
        assert data[:40] not in client.get(target).get_data()


# --- the CSV export ----------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@settings(max_examples=50, deadline=None)
@given(labels=st.lists(
    st.tuples(st.sampled_from(["=", "+", "-", "@", " =", "==", "+-", ""]),
              st.text(alphabet=st.characters(blacklist_characters=",\t\r\n\"",
                                             blacklist_categories=("Cs", "Cc")),
                      max_size=12)).map("".join),
    min_size=1, max_size=8))
def test_csv_export_never_starts_a_cell_with_a_formula_character(model_dir, tmp_path_factory,
                                                                 labels):
    client = make_app(model_dir, tmp_path_factory.mktemp("csv") / "data").test_client()
    rng = np.random.default_rng(len(labels))
    data = "\n".join(kdd_line(normal_values(rng), label or "x") for label in labels).encode()
    response = upload(client, data, query="?format=csv")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == len(labels) + 1
    for row in rows[1:]:
        for cell in row[2:3] + row[5:]:  # severity and the label: the text cells
            assert not cell.startswith(FORMULA_STARTS), row


def test_csv_service_and_flag_never_reach_the_export_unescaped(client):
    """Text features are not CSV columns; a formula in them must not appear anywhere."""
    rng = np.random.default_rng(9)
    values = normal_values(rng) | {"service": "=HYPERLINK(1)", "flag": "@SUM(A1)"}
    response = upload(client, (kdd_line(values, "=cmd") + "\n").encode(), query="?format=csv")
    text = response.get_data(as_text=True)
    for cell in [c for row in csv.reader(io.StringIO(text)) for c in row]:
        assert not cell.startswith(FORMULA_STARTS), cell


# --- error bodies --------------------------------------------------------------------------------

SECRET = "/srv/anomalyze/secret/path/model.joblib"


def boom(*_args, **_kwargs):
    raise RuntimeError(f"failed reading {SECRET}: Traceback (most recent call last)")


@pytest.mark.parametrize(("target", "method", "path"), [
    ("server.model_holder.ModelHolder.status", "get", "/health"),
    ("server.info.current_model", "get", "/api/model-info"),
    ("server.predict.analyse_file", "upload", "/api/predict"),
    ("server.predict.keep_upload", "upload", "/api/predict"),
    ("server.predict.csv_rows", "upload-csv", "/api/predict"),
    ("server.predict.parse_json_records", "json", "/api/predict-json"),
    ("utils.registry.sqlite.SQLiteRegistry.counts", "get", "/api/retrain/status"),
    ("server.uploads.UploadSink.receive", "upload", "/api/predict"),
])
def test_server_faults_are_a_bare_500_without_paths_or_tracebacks(client, monkeypatch,
                                                                  log_lines, target, method,
                                                                  path):
    monkeypatch.setattr(target, boom)
    if method == "get":
        response = client.get(path)
    elif method == "json":
        response = client.post(path, json={"records": [[0] * 41]})
    else:
        response = upload(client, synthetic_kdd(10, 2),
                          query="?format=csv" if method == "upload-csv" else "")
    assert response.status_code == 500
    assert response.get_json() == GENERIC_500
    text = response.get_data(as_text=True)
    assert "/srv" not in text and "Traceback" not in text and "RuntimeError" not in text
    logged = [line for line in log_lines if "traceback" in line]
    assert logged and SECRET in logged[0]["traceback"]  # the details go to the log only


# --- debug mode ----------------------------------------------------------------------------------


def test_the_entry_point_is_not_in_debug_mode_in_a_fresh_interpreter(model_dir, tmp_path):
    """FLASK_DEBUG=1 (and the old FLASK_ENV) set before Flask is even imported."""
    env = {**os.environ, "FLASK_DEBUG": "1", "FLASK_ENV": "development",
           "ANOMALYZE_MODEL_DIR": str(model_dir), "ANOMALYZE_DATA_DIR": str(tmp_path)}
    code = ("import api_server as a; c = a.app.config; "
            "print(a.app.debug, c['DEBUG'], c['PROPAGATE_EXCEPTIONS'], c['TESTING'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "False", "False", "False"]
