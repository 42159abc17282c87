"""How the server's parts are joined: the model version on every response, extensions that
do not depend on their initialisation order, and BLAS limited once at start-up."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from flask import Flask

from server import create_app, retrain, uploads
from server.config import load_config
from server.retrain import RetrainLauncher
from tests.helpers.api_calls import upload
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.repo import REPO_ROOT
from utils.model_store import load_model

# --- X-Model-Version -----------------------------------------------------------------------


def test_a_refused_upload_names_the_model_that_would_have_scored_it(client, model_dir):
    response = client.post("/api/predict", data={}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error_type"] == "missing_file"
    assert response.headers["X-Model-Version"] == load_model(model_dir).version


def test_an_unknown_route_still_names_the_model_being_served(client, model_dir):
    response = client.get("/api/no-such-endpoint")
    assert response.status_code == 404
    assert response.headers["X-Model-Version"] == load_model(model_dir).version


def test_a_too_large_upload_still_names_the_model(model_dir, data_dir):
    app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                      "MAX_UPLOAD_MB": 0.001})
    response = upload(app.test_client(), synthetic_kdd(400, 0, seed=1))
    assert response.status_code == 413
    assert response.headers["X-Model-Version"] == load_model(model_dir).version


def test_without_a_model_no_version_is_claimed(tmp_path):
    app = create_app({"TESTING": True, "MODEL_DIR": tmp_path / "empty",
                      "DATA_DIR": tmp_path / "data"})
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert "X-Model-Version" not in response.headers


# --- extensions in any order ----------------------------------------------------------------


@pytest.mark.parametrize("order", ["uploads first", "retrain first"])
def test_a_due_retrain_is_launched_whichever_extension_was_initialised_first(
        tmp_path, monkeypatch, order):
    launched: list[str] = []
    monkeypatch.setattr(RetrainLauncher, "launch",
                        lambda self, trigger: launched.append(trigger) or 1)
    app = Flask(__name__)
    app.config.from_mapping(load_config({}))
    app.config.update(MODEL_DIR=tmp_path / "model", DATA_DIR=tmp_path / "data",
                      RETRAIN_THRESHOLD=2)
    parts = [uploads, retrain] if order == "uploads first" else [retrain, uploads]
    for part in parts:
        part.init_app(app)
    sink = app.extensions[uploads.EXTENSION_KEY]
    for seed in (1, 2):
        body = synthetic_kdd(5, 0, seed=seed)
        path = sink.incoming_dir / f"upload-{seed}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        received = uploads.Received(path=path, sha256=hashlib.sha256(body).hexdigest(),
                                    size=len(body), original_name="u.txt")
        with app.app_context():
            sink.register(received, rows=5, has_labels=True, input_kind="kdd")
        assert launched == ([] if seed == 1 else ["upload"])


def test_a_due_retrain_of_one_app_does_not_launch_another_apps_retrain(tmp_path, monkeypatch):
    launched: list[object] = []
    monkeypatch.setattr(RetrainLauncher, "launch",
                        lambda self, trigger: launched.append(self.data_dir) or 1)
    apps = []
    for name in ("a", "b"):
        app = Flask(name)
        app.config.from_mapping(load_config({}))
        app.config.update(MODEL_DIR=tmp_path / name / "model", DATA_DIR=tmp_path / name / "data")
        uploads.init_app(app)
        retrain.init_app(app)
        apps.append(app)
    apps[1].extensions[uploads.EXTENSION_KEY].on_retrain_due()
    assert launched == [tmp_path / "b" / "data"]


# --- BLAS threads -------------------------------------------------------------------------

BLAS_THREADS = """
import json, sys
from threadpoolctl import threadpool_info
{setup}
print(json.dumps([pool["num_threads"] for pool in threadpool_info()
                  if pool["user_api"] == "blas"]))
"""


def blas_threads_after(setup: str) -> list[int]:
    """BLAS thread counts in a fresh interpreter (BLAS allowed 2 threads) after ``setup``."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2",
           "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", BLAS_THREADS.format(setup=setup)], env=env,
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts, "numpy's BLAS was not found"
    return counts


def test_mapping_in_parallel_leaves_the_process_blas_threads_alone():
    counts = blas_threads_after(
        "import numpy\nfrom utils.parallel import ordered_map\n"
        "assert list(ordered_map(abs, range(-5, 5), threads=2)) == [5,4,3,2,1,0,1,2,3,4]")
    assert max(counts) == 2


def test_the_api_limits_blas_to_one_thread_when_it_starts(tmp_path):
    counts = blas_threads_after(
        "import numpy\nfrom server import create_app\n"
        f"create_app({{'MODEL_DIR': {str(tmp_path)!r}, 'DATA_DIR': {str(tmp_path / 'd')!r}}})")
    assert counts == [1] * len(counts)
