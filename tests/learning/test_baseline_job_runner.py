"""The background process of a baseline job (utils/baseline/jobs.py), with a fake trainer,
health reporter and gate: what it records at each end, and that nothing but a promotion ever
changes the Zeek model that serves, whatever fails or dies in between."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.baseline_fakes import Fakes
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.registry import register
from tests.helpers.repo import REPO_ROOT
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.baseline.jobs import (
    JobNotHeld,
    job_dir,
    promote_held_job,
    run_baseline_job,
)
from utils.model_store import ModelLoadError, open_model_store
from utils.registry import SQLiteRegistry


@pytest.fixture
def registry(tmp_path) -> SQLiteRegistry:
    return SQLiteRegistry(tmp_path / "data")


@pytest.fixture
def model_dir(tmp_path) -> Path:
    return tmp_path / "models"


def zeek_file(seed: int, rows: int = 40) -> bytes:
    return tsv_log(conn_rows(rows, seed=seed))


def queue_job(registry: SQLiteRegistry, *contents: bytes, **options: Any) -> int:
    files = [register(registry, data, name=f"conn-{i}.log", threshold=0,
                      trusted=True).upload.sha256 for i, data in enumerate(contents)]
    return registry.create_baseline_job(files, {"exclude_hosts": [], "exclude_ranges": [],
                                                 "report_only": False, **options})


def run(registry, model_dir, job_id, fakes: Fakes, **kwargs):
    options = {"heartbeat_seconds": 0.05, "lock_wait": 1.0, **kwargs}
    return run_baseline_job(job_id, registry=registry, model_dir=model_dir,
                            data_dir=registry.data_dir, trainer=fakes.trainer,
                            reporter=fakes.reporter, gate=fakes.gate,
                            contamination=fakes.contamination, **options)


def current_zeek(model_dir: Path) -> str | None:
    try:
        return open_model_store(model_dir, kind="zeek").current().version
    except ModelLoadError:
        return None


def test_the_first_baseline_is_reported_trained_gated_and_promoted(registry, model_dir):
    fakes = Fakes()
    job_id = queue_job(registry, zeek_file(1), zeek_file(2, rows=25))
    job = run(registry, model_dir, job_id, fakes)
    assert (job["status"], job["stage"], job["version"]) == ("promoted", "done", "zeek-1")
    assert job["reason"] == "the first Zeek model"
    assert job["health"] == {"rows": 65, "warnings": []}
    assert job["figures"] == {"false_alarm_rate": 0.01,
                              "gate": {"false_alarm_rate_after": 0.01}}
    assert job["finished_at"] is not None
    assert fakes.calls[0] == ("report", 65, "zeek")  # both files, one baseline
    assert fakes.calls[1][:3] == ("train", 65, None)
    assert [f["name"] for f in fakes.calls[1][3]["files"]] == ["conn-0.log", "conn-1.log"]
    assert fakes.calls[2] == ("gate", None, "newest")
    assert current_zeek(model_dir) == "zeek-1"
    assert not (model_dir / "model.joblib").exists()  # the KDD model's folder is untouched


def test_a_job_is_run_by_one_process_only(registry, model_dir):
    job_id = queue_job(registry, zeek_file(1))
    assert run(registry, model_dir, job_id, Fakes())["status"] == "promoted"
    fakes = Fakes()
    assert run(registry, model_dir, job_id, fakes) is None
    assert fakes.calls == []


def test_a_report_only_job_reports_and_trains_nothing(registry, model_dir):
    fakes = Fakes()
    job = run(registry, model_dir, queue_job(registry, zeek_file(1), report_only=True), fakes)
    assert job["status"] == "reported"
    assert job["health"]["rows"] == 40
    assert "report only" in job["reason"]
    assert [call[0] for call in fakes.calls] == ["report"]
    assert current_zeek(model_dir) is None


def test_a_health_warning_holds_even_the_first_model_until_an_admin_promotes_it(
        registry, model_dir):
    fakes = Fakes(warnings=[{"code": "scanner", "message": "10.1.0.3 contacted 400 hosts",
                             "hosts": ["10.1.0.3"]}])
    job_id = queue_job(registry, zeek_file(1))
    job = run(registry, model_dir, job_id, fakes)
    assert (job["status"], job["version"]) == ("held", "zeek-1")
    assert "health report warns (scanner)" in job["reason"]
    assert current_zeek(model_dir) is None
    promoted = promote_held_job(registry, job_id, model_dir=model_dir,
                                data_dir=registry.data_dir)
    assert promoted["status"] == "promoted"
    assert "promoted by an admin" in promoted["reason"]
    assert current_zeek(model_dir) == "zeek-1"
    with pytest.raises(JobNotHeld, match="promoted"):
        promote_held_job(registry, job_id, model_dir=model_dir, data_dir=registry.data_dir)


def test_an_advisory_warning_does_not_hold_the_model(registry, model_dir):
    fakes = Fakes(warnings=[{"code": "short_period", "message": "2 h", "hosts": []}])
    job = run(registry, model_dir, queue_job(registry, zeek_file(1)), fakes)
    assert job["status"] == "promoted"
    assert job["health"]["warnings"][0]["code"] == "short_period"  # still shown


def test_a_candidate_the_gate_refuses_is_held_and_the_current_model_keeps_serving(
        registry, model_dir):
    run(registry, model_dir, queue_job(registry, zeek_file(1)), Fakes())
    fakes = Fakes(promote=False, version="zeek-2")
    job = run(registry, model_dir, queue_job(registry, zeek_file(2)), fakes)
    assert (job["status"], job["version"]) == ("held", "zeek-2")
    assert job["reason"] == "held: more false alarms than the current model"
    assert fakes.calls[-1] == ("gate", "zeek-1", "newest")
    assert current_zeek(model_dir) == "zeek-1"


def test_a_retrain_holding_the_model_lock_too_long_leaves_the_baseline_held(registry,
                                                                            model_dir):
    lock = registry.retrain_lock()
    assert lock.acquire()
    try:
        job = run(registry, model_dir, queue_job(registry, zeek_file(1)), Fakes(),
                  lock_wait=0.2)
    finally:
        lock.release()
    assert job["status"] == "held"
    assert "kept the model lock for 0.2 s" in job["reason"]
    assert current_zeek(model_dir) is None
    assert promote_held_job(registry, job["id"], model_dir=model_dir,
                            data_dir=registry.data_dir)["status"] == "promoted"


def test_a_model_promoted_elsewhere_after_the_gate_judged_is_not_replaced(registry,
                                                                          model_dir):
    run(registry, model_dir, queue_job(registry, zeek_file(1)), Fakes())
    meanwhile = Fakes(version="zeek-meanwhile")

    class Slow(Fakes):
        def gate(self, current, candidate, newest):
            run(registry, model_dir, queue_job(registry, zeek_file(3)), meanwhile)
            return super().gate(current, candidate, newest)

    job = run(registry, model_dir, queue_job(registry, zeek_file(2)), Slow(version="zeek-2"))
    assert job["status"] == "held"
    assert "another Zeek model became current" in job["reason"]
    assert current_zeek(model_dir) == "zeek-meanwhile"


def test_a_crash_in_training_fails_the_job_and_the_previous_model_keeps_serving(
        registry, model_dir):
    run(registry, model_dir, queue_job(registry, zeek_file(1)), Fakes())
    job = run(registry, model_dir, queue_job(registry, zeek_file(2)),
              Fakes(crash=RuntimeError("boom"), version="zeek-2"))
    assert job["status"] == "failed"
    assert job["reason"] == "unexpected error (RuntimeError); see the job's log"
    assert "boom" not in job["reason"]  # no internals in the record the page shows
    assert current_zeek(model_dir) == "zeek-1"
    assert [v["version"] for v in open_model_store(model_dir, kind="zeek").versions()
            ] == ["zeek-1"]


def _run_and_die(registry, model_dir, job_id) -> None:
    class Dying(Fakes):
        def trainer(self, records, **kwargs):
            os._exit(9)  # as if killed mid-training (OOM killer, a deploy)

    run(registry, model_dir, job_id, Dying(version="zeek-2"))


def test_a_process_killed_mid_job_leaves_the_job_failed_on_the_next_look(registry, model_dir):
    run(registry, model_dir, queue_job(registry, zeek_file(1)), Fakes())
    job_id = queue_job(registry, zeek_file(2))
    child = multiprocessing.get_context("fork").Process(
        target=_run_and_die, args=(registry, model_dir, job_id))
    child.start()
    child.join(60)
    assert child.exitcode == 9
    job = registry.baseline_job(job_id)
    assert job["status"] == "failed"
    assert job["pid"] == child.pid
    assert "exited without finishing" in job["reason"]
    assert "previous model keeps serving" in job["reason"]
    assert current_zeek(model_dir) == "zeek-1"


def test_a_job_given_up_on_while_it_trains_promotes_nothing(registry, model_dir):
    job_id = queue_job(registry, zeek_file(1))

    class GivenUp(Fakes):
        def trainer(self, records, **kwargs):
            result = super().trainer(records, **kwargs)
            registry.update_baseline_job(job_id, status="failed", reason="no heartbeat")
            return result

    job = run(registry, model_dir, job_id, GivenUp())
    assert (job["status"], job["reason"]) == ("failed", "no heartbeat")
    assert current_zeek(model_dir) is None


def test_a_file_that_is_not_a_zeek_log_rejects_the_job_naming_it(registry, model_dir):
    kdd = register(registry, synthetic_kdd(20, 5, seed=1), name="week.txt", threshold=0)
    job_id = registry.create_baseline_job([kdd.upload.sha256], {})
    job = run(registry, model_dir, job_id, Fakes())
    assert job["status"] == "rejected"
    assert job["reason"] == ("week.txt holds kdd records; a baseline is trained from Zeek "
                             "conn.logs")


def test_a_kept_file_whose_bytes_are_gone_rejects_the_job(registry, model_dir):
    job_id = queue_job(registry, zeek_file(1))
    upload = registry.find(registry.baseline_job(job_id)["files"][0]["sha256"])
    registry.path_of(upload).unlink()
    job = run(registry, model_dir, job_id, Fakes())
    assert (job["status"], job["reason"]) == ("rejected", "the kept bytes of conn-0.log are "
                                                          "gone")


def test_with_shared_models_the_candidate_is_published_from_the_jobs_folder(registry,
                                                                           model_dir):
    published: list[tuple[Path, str, str]] = []

    class Models:
        def publish(self, folder: Path, kind: str) -> None:
            card = (folder / "model_card.json").read_text()
            published.append((folder, kind, hashlib.sha256(card.encode()).hexdigest()))

    job_id = queue_job(registry, zeek_file(1))
    job = run(registry, model_dir, job_id, Fakes(), models=Models())
    assert job["status"] == "promoted"
    assert [(folder, kind) for folder, kind, _ in published] == [
        (job_dir(registry.data_dir, job_id) / "model", "zeek")]
    assert (published[0][0] / "model.joblib").is_file()
    assert current_zeek(model_dir) is None  # the instances sync it from the shared pointer


def test_exclusions_reach_the_report_and_the_trainer(registry, model_dir):
    exclusions = pytest.importorskip("utils.baseline.exclusions",
                                     reason="needs utils.baseline from the baseline20 branch")
    fakes = Fakes()
    job_id = queue_job(registry, zeek_file(1), exclude_hosts=["10.1.0.1", "10.1.0.2"])
    job = run(registry, model_dir, job_id, fakes)
    assert job["status"] == "promoted"
    assert fakes.calls[0][1] < 40  # the report describes the baseline without those hosts
    assert isinstance(fakes.calls[1][2], exclusions.Exclusions)
    assert "excluded" in job["health"]


def test_the_job_command_runs_a_queued_job_once_and_says_so_in_its_exit_code(registry,
                                                                             model_dir):
    kdd = register(registry, synthetic_kdd(20, 5, seed=2), name="week.txt", threshold=0)
    job_id = registry.create_baseline_job([kdd.upload.sha256], {})
    command = [sys.executable, "train_model.py", "--job", str(job_id), "--model-dir",
               str(model_dir), "--data-dir", str(registry.data_dir)]
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("ANOMALYZE_DATABASE_URL", "ANOMALYZE_STORE_URL")}
    first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                           env=environment)
    assert first.returncode == 0, first.stderr
    assert f"baseline job {job_id}: rejected" in first.stdout
    job = registry.baseline_job(job_id)
    assert job["status"] == "rejected" and job["pid"] != os.getpid()
    again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                           env=environment)
    assert again.returncode == 4
    assert "not queued" in again.stderr
