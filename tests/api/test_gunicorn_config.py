"""gunicorn.conf.py as gunicorn reads it (a plain module of settings and hooks)."""

import gc
import os
import runpy

import pytest
from conftest import REPO_ROOT

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """Reading the config sets BLAS variables in os.environ; undo that after each test."""
    for name in (*BLAS_VARIABLES, "WEB_CONCURRENCY", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_settings_share_the_preloaded_model_and_keep_blas_to_one_thread():
    config = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    assert all(os.environ[name] == "1" for name in BLAS_VARIABLES)
    assert config["preload_app"] is True
    assert (config["workers"], config["threads"], config["worker_class"]) == (2, 4, "gthread")
    assert config["control_socket_disable"] is True


def test_master_freezes_what_it_loaded_before_forking_a_worker():
    config = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    gc.unfreeze()
    try:
        config["pre_fork"](server=None, worker=None)
        assert gc.get_freeze_count() > 0  # the workers' collections skip these objects
    finally:
        gc.unfreeze()
