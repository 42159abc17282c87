"""A refused value stops every process that reads the variable, at start-up, naming it: the ML
API's and the frontend's app factories, gunicorn.conf.py, and each script's main()."""

from __future__ import annotations

import importlib
import runpy
import subprocess
import sys

import pytest

from settings import READERS, REPO_ROOT, SETTINGS, SettingError

REFUSABLE = [s for s in SETTINGS if s.parse.refuses is not None]
# Every script's main(); each reads the scripts' settings before anything else.
SCRIPTS = ("train_model", "retrain_model", "optimize_threshold", "test_performance",
           "registry_admin",
           "utils.dataset", "benchmarks.run_all", "benchmarks.bench_http",
           "benchmarks.throughput", "benchmarks.slow_clients", "benchmarks.frontend_upload",
           "scripts.run_local", "utils.local_engines.__main__",
           "benchmarks.validation_study", "benchmarks.zeek_bench",
           "benchmarks.precision", "benchmarks.registry_overhead", "watch_zeek",
           "benchmarks.watch_bench", "analyst_admin", "score_logs",
           "benchmarks.dask_bench", "benchmarks.stages", "benchmarks.zeek_k_rule",
           "benchmarks.http_stages")
BLAS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _id(setting) -> str:
    return f"{setting.name}-{'-'.join(setting.readers)}"


def start_api(tmp_path) -> None:
    from server import create_app

    create_app({"MODEL_DIR": tmp_path / "models", "DATA_DIR": tmp_path / "data"})


def start_frontend(tmp_path) -> None:
    from api.app_vercel import create_app

    create_app()


def start_gunicorn(tmp_path) -> None:
    runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))


def start_gunicorn_frontend(tmp_path) -> None:
    runpy.run_path(str(REPO_ROOT / "gunicorn_frontend.conf.py"))


def start_tests(tmp_path) -> None:
    from settings import load_settings

    load_settings("tests")


STARTS = {"api": start_api, "frontend": start_frontend, "gunicorn": start_gunicorn,
          "gunicorn_frontend": start_gunicorn_frontend, "tests": start_tests}


@pytest.fixture(autouse=True)
def _blas_variables_restored(monkeypatch):
    """gunicorn.conf.py sets the BLAS variables; keep that inside the test."""
    for name in BLAS:
        monkeypatch.setenv(name, "1")


@pytest.mark.parametrize("setting", REFUSABLE, ids=_id)
def test_a_refused_value_stops_every_reader_at_start_up_naming_it(setting, monkeypatch,
                                                                  tmp_path, capsys):
    monkeypatch.setenv(setting.name, setting.parse.refuses)
    for reader in setting.readers:
        if reader == "scripts":
            for name in SCRIPTS:
                with pytest.raises(SystemExit) as info:
                    importlib.import_module(name).main()  # settings come before arguments
                assert info.value.code == 2, name
                assert setting.name in capsys.readouterr().err, name
        else:
            with pytest.raises(SettingError, match=setting.name):
                STARTS[reader](tmp_path)


def test_every_reader_has_a_start_checked():
    assert set(STARTS) | {"scripts"} == set(READERS)


def test_each_start_runs_with_the_defaults(tmp_path, monkeypatch):
    for setting in SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    for start in STARTS.values():
        start(tmp_path)


def test_every_script_with_a_main_is_checked():
    mains = {path.stem for path in REPO_ROOT.glob("*.py")
             if "def main(" in path.read_text() and path.name != "gunicorn.conf.py"}
    mains |= {".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
              for folder in ("utils", "benchmarks", "scripts")
              for path in (REPO_ROOT / folder).rglob("*.py") if "def main(" in path.read_text()}
    assert mains == set(SCRIPTS)


@pytest.mark.e2e
@pytest.mark.parametrize(("command", "variable"), [
    ([sys.executable, "-m", "gunicorn", "api_server:app", "-c", "gunicorn.conf.py"],
     "GUNICORN_THREADS"),
    ([sys.executable, "-c", "import api_server"], "ANOMALYZE_MAX_DECOMPRESSED_MB"),
    ([sys.executable, "retrain_model.py"], "ANOMALYZE_RETRAIN_TOLERANCE"),
], ids=["gunicorn", "api", "retrain_model"])
def test_a_real_process_exits_naming_the_variable(command, variable, tmp_path):
    env = {"PATH": "/usr/bin:/bin", variable: "nan" if "TOLERANCE" in variable else "two",
           "ANOMALYZE_DATA_DIR": str(tmp_path), "ANOMALYZE_MODEL_DIR": str(tmp_path)}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0
    assert f"environment variable {variable}=" in done.stderr
