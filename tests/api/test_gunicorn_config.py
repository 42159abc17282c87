"""gunicorn.conf.py as gunicorn reads it (a plain module of settings and hooks)."""

import gc
import os
import runpy
import subprocess
import sys

import pytest

from tests.helpers.repo import REPO_ROOT

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CLIENT_LIMITS = ("ANOMALYZE_CLIENT_READ_TIMEOUT", "ANOMALYZE_CLIENT_HEADER_TIMEOUT",
                 "ANOMALYZE_CLIENT_BODY_TIMEOUT")
GUARDED_WORKER = "utils.gunicorn_worker.GuardedThreadWorker"


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """Reading the config sets BLAS variables in os.environ; undo that after each test."""
    for name in (*BLAS_VARIABLES, "WEB_CONCURRENCY", "GUNICORN_THREADS", *CLIENT_LIMITS):
        monkeypatch.delenv(name, raising=False)


def test_settings_share_the_preloaded_model_and_keep_blas_to_one_thread():
    config = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    assert all(os.environ[name] == "1" for name in BLAS_VARIABLES)
    assert config["preload_app"] is True
    assert (config["workers"], config["threads"], config["worker_class"]) == (2, 16, GUARDED_WORKER)
    assert config["control_socket_disable"] is True


def test_frontend_settings_use_the_same_worker_with_time_limits_on_slow_clients():
    config = runpy.run_path(str(REPO_ROOT / "gunicorn_frontend.conf.py"))
    assert (config["workers"], config["threads"], config["worker_class"]) == (2, 16, GUARDED_WORKER)
    assert config["control_socket_disable"] is True


@pytest.mark.parametrize("config_file", ["gunicorn.conf.py", "gunicorn_frontend.conf.py"])
@pytest.mark.parametrize(("variable", "value"), [
    ("ANOMALYZE_CLIENT_READ_TIMEOUT", "ten"), ("ANOMALYZE_CLIENT_HEADER_TIMEOUT", "0"),
    ("ANOMALYZE_CLIENT_BODY_TIMEOUT", "-5"), ("ANOMALYZE_CLIENT_BODY_TIMEOUT", "nan")])
@pytest.mark.e2e
def test_a_bad_client_time_limit_stops_gunicorn_at_start_up_naming_it(config_file, variable,
                                                                       value):
    env = {**os.environ, variable: value}
    done = subprocess.run([sys.executable, "-m", "gunicorn", "api.index:app", "-c", config_file,
                           "-b", "127.0.0.1:0"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert variable in done.stderr


def test_master_freezes_what_it_loaded_before_forking_a_worker():
    config = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    gc.unfreeze()
    try:
        config["pre_fork"](server=None, worker=None)
        assert gc.get_freeze_count() > 0  # the workers' collections skip these objects
    finally:
        gc.unfreeze()
