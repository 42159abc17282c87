"""Baseline jobs in the registry, on every backend this build has (the fixture of
test_learning_interfaces.py): recorded on kept uploads, claimed by exactly one process,
updated only in the states the caller expects, and marked failed once their process is gone."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.learning.test_learning_interfaces import REGISTRIES, keep
from utils.registry import Registry, UnknownUpload
from utils.registry import baseline_jobs as rules
from utils.registry.baseline_jobs import JOB_FIELDS, public_job


@pytest.fixture(params=[name if name == "sqlite" else pytest.param(name, marks=pytest.mark.e2e)
                        for name in sorted(REGISTRIES)])
def registry(request, tmp_path) -> Registry:
    return REGISTRIES[request.param](request, tmp_path / "data")


def _two_uploads(registry: Registry, tmp_path) -> list[str]:
    return [keep(registry, tmp_path / "in", content).upload.sha256
            for content in (b"first baseline file\n", b"second baseline file\n")]


OPTIONS = {"exclude_hosts": ["10.0.0.5"], "exclude_ranges": [[1.0, 2.5]], "report_only": False}


def test_a_job_is_recorded_queued_on_kept_uploads_with_their_names_and_rows(registry, tmp_path):
    files = _two_uploads(registry, tmp_path)
    job_id = registry.create_baseline_job(files, OPTIONS)
    job = registry.baseline_job(job_id)
    assert list(public_job(job)) == list(JOB_FIELDS)
    assert job["id"] == job_id
    assert (job["status"], job["stage"], job["finished_at"]) == ("queued", "queued", None)
    assert job["files"] == [{"sha256": sha, "name": "u.txt", "rows": 1} for sha in files]
    assert job["options"] == OPTIONS
    assert (job["health"], job["figures"], job["version"], job["reason"]) == (None,) * 4
    assert registry.baseline_job(job_id + 1000) is None


def test_a_job_on_an_upload_that_is_not_kept_is_refused_and_not_recorded(registry, tmp_path):
    files = _two_uploads(registry, tmp_path)
    with pytest.raises(UnknownUpload, match="f" * 64):
        registry.create_baseline_job([files[0], "f" * 64], OPTIONS)
    assert registry.baseline_jobs() == []


def test_jobs_are_listed_newest_first_up_to_the_limit(registry, tmp_path):
    files = _two_uploads(registry, tmp_path)
    ids = [registry.create_baseline_job(files[:1], {"n": n}) for n in range(4)]
    assert [job["id"] for job in registry.baseline_jobs(3)] == ids[::-1][:3]


def test_a_queued_job_is_claimed_once_and_then_runs_under_this_process(registry, tmp_path):
    job_id = registry.create_baseline_job(_two_uploads(registry, tmp_path), OPTIONS)
    claimed = registry.claim_baseline_job(job_id)
    assert claimed["id"] == job_id
    assert (claimed["status"], claimed["pid"], claimed["host"]) == (
        "running", os.getpid(), rules.HOST)
    assert registry.claim_baseline_job(job_id) is None
    assert registry.claim_baseline_job() is None  # no other queued job
    assert registry.baseline_job(job_id)["status"] == "running"  # alive: left running


def test_without_an_id_the_oldest_queued_job_is_claimed(registry, tmp_path):
    files = _two_uploads(registry, tmp_path)
    first, second = (registry.create_baseline_job(files, OPTIONS) for _ in range(2))
    assert registry.claim_baseline_job()["id"] == first
    assert registry.claim_baseline_job()["id"] == second


def _claim_in_child(registry: Registry, job_id: int, start: float, results) -> None:
    time.sleep(max(0.0, start - time.time()))
    results.put(bool(registry.claim_baseline_job(job_id)))


def test_of_processes_claiming_one_job_at_once_exactly_one_gets_it(registry, tmp_path):
    job_id = registry.create_baseline_job(_two_uploads(registry, tmp_path), OPTIONS)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = time.time() + 1.0
    children = [context.Process(target=_claim_in_child, args=(registry, job_id, start, results))
                for _ in range(6)]
    for child in children:
        child.start()
    claims = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(60)
    assert sorted(claims) == [False] * 5 + [True]
    job = registry.baseline_job(job_id)  # the winner has exited: its job is marked failed
    assert job["pid"] in {child.pid for child in children}
    assert job["status"] == "failed"


def test_updates_apply_only_in_the_expected_states_and_a_final_status_closes_the_job(
        registry, tmp_path):
    job_id = registry.create_baseline_job(_two_uploads(registry, tmp_path), OPTIONS)
    registry.claim_baseline_job(job_id)
    health = {"rows": 2, "warnings": [], "rejected_share": float("nan")}
    assert registry.update_baseline_job(job_id, only_if="running", stage="training",
                                        health=health)
    job = registry.baseline_job(job_id)
    assert job["stage"] == "training"
    assert job["health"] == {"rows": 2, "warnings": [], "rejected_share": None}
    assert not registry.update_baseline_job(job_id, only_if="held", status="promoted")
    assert registry.update_baseline_job(job_id, only_if=("running",), status="held",
                                        version="v1", reason="the gate said no",
                                        figures={"false_alarm_rate": 0.01})
    job = registry.baseline_job(job_id)
    assert (job["status"], job["version"], job["reason"]) == ("held", "v1", "the gate said no")
    assert job["figures"] == {"false_alarm_rate": 0.01}
    assert job["finished_at"] is not None
    assert not registry.update_baseline_job(job_id, only_if="running", stage="late")
    with pytest.raises(ValueError, match="updatable"):
        registry.update_baseline_job(job_id, created_at="then")
    with pytest.raises(ValueError, match="status"):
        registry.update_baseline_job(job_id, status="finished")


def test_a_job_whose_process_died_is_marked_failed_on_the_next_look(registry, tmp_path):
    job_id = registry.create_baseline_job(_two_uploads(registry, tmp_path), OPTIONS)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    registry.claim_baseline_job(job_id)
    registry.update_baseline_job(job_id, pid=int(dead.stdout))  # as if that process ran it
    job = registry.baseline_jobs()[0]
    assert job["status"] == "failed"
    assert "exited without finishing" in job["reason"]
    assert job["finished_at"] is not None
    assert not registry.update_baseline_job(job_id, only_if="running", status="promoted")


def test_a_job_silent_for_too_long_on_another_host_is_marked_failed(registry, tmp_path,
                                                                    monkeypatch):
    job_id = registry.create_baseline_job(_two_uploads(registry, tmp_path), OPTIONS)
    registry.claim_baseline_job(job_id)
    registry.update_baseline_job(job_id, host="elsewhere")
    assert registry.baseline_job(job_id)["status"] == "running"  # its heartbeat is fresh
    monkeypatch.setattr(rules, "STALE_SECONDS", -1.0)
    job = registry.baseline_job(job_id)
    assert job["status"] == "failed"
    assert "no heartbeat" in job["reason"]


def test_a_queued_job_never_started_is_given_up_after_the_stale_time(registry, tmp_path,
                                                                     monkeypatch):
    job_id = registry.create_baseline_job(_two_uploads(registry, tmp_path), OPTIONS)
    assert registry.baseline_job(job_id)["status"] == "queued"
    monkeypatch.setattr(rules, "STALE_SECONDS", -1.0)
    assert "never started" in registry.baseline_job(job_id)["reason"]


def test_a_registry_file_from_before_baseline_jobs_is_upgraded_in_place(tmp_path):
    from utils.registry import SQLiteRegistry

    old = SQLiteRegistry(tmp_path / "data")
    sha256 = keep(old, tmp_path / "in", b"kept before the upgrade\n").upload.sha256
    with sqlite3.connect(old.db_path) as db:  # as schema version 3 left it
        db.execute("DROP TABLE baseline_jobs")
        db.execute("PRAGMA user_version = 3")
    upgraded = SQLiteRegistry(tmp_path / "data")
    assert upgraded.find(sha256) is not None
    job_id = upgraded.create_baseline_job([sha256], OPTIONS)
    assert upgraded.baseline_job(job_id)["status"] == "queued"
    with sqlite3.connect(old.db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
