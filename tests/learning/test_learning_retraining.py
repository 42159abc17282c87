"""Retraining: which upload rows a candidate learns from, the gate, promotion and what every
failure leaves behind, the queue of requests, rollback."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from learning_helpers import kdd_bytes, register, zeek_upload

from utils.model_store import MODEL_FILE, VERSIONS_DIR, list_versions, load_model
from utils.preprocessing import read_records
from utils.registry import RetrainBusy, RetrainLock
from utils.retraining import (
    RetrainError,
    UploadSelection,
    close_interrupted_runs,
    gate,
    retrain_once,
    rollback,
    run_queued,
)
from utils.scoring import score_records
from utils.training import train


def row_keys(features: pd.DataFrame) -> set[int]:
    return set(pd.util.hash_pandas_object(features, index=False).tolist())


def register_batches(registry, lines, n: int, size: int = 100, trusted: bool = False,
                     **kwargs) -> None:
    for i in range(n):
        register(registry, kdd_bytes(lines[i * size:(i + 1) * size], **kwargs), f"u{i}.txt",
                 trusted=trusted)


def model_bytes(setup) -> bytes:
    return (setup.model_dir / MODEL_FILE).read_bytes()


# --- which rows are used -------------------------------------------------------------------


def test_attack_labeled_rows_of_a_trusted_upload_never_train_and_all_of_them_validate(
        setup, test_lines):
    model = load_model(setup.model_dir)
    records = read_records(kdd_bytes(test_lines[:2000]))
    selection = UploadSelection()
    selection.add(records, model, validation_fraction=0.2, random_state=0, min_confidence=0.5,
                  trusted=True)
    trained = row_keys(selection.normal_rows(10**6, 0))
    attacks = records.features[(records.labels != "normal").to_numpy()]
    normals = records.features[(records.labels == "normal").to_numpy()]
    assert not trained & row_keys(attacks)
    assert row_keys(attacks) <= row_keys(selection.validation_features[0])
    held = selection.counts["validation_normal"]
    assert held == pytest.approx(0.2 * len(normals), abs=1)
    assert selection.counts["labeled_normal_fit"] == len(normals) - held
    assert selection.counts["validation_attack"] == len(attacks)


def test_unlabeled_rows_train_only_when_the_model_is_confidently_normal(setup, test_lines):
    model = load_model(setup.model_dir)
    records = read_records(kdd_bytes(test_lines[:2000], labels=False))
    scored = score_records(model, records)
    trusted = (scored.severity == "Normal") & (scored.confidence >= 0.5)
    assert 0 < trusted.sum() < len(records)  # the test means something either way
    selection = UploadSelection()
    selection.add(records, model, validation_fraction=0.2, random_state=0, min_confidence=0.5)
    used = selection.normal_rows(10**6, 0)
    assert len(used) == trusted.sum()
    assert not score_records(model, read_records(used.to_csv(index=False, header=False)
                                                 .encode())).is_anomaly.any()
    assert selection.validation_features == []
    assert selection.counts["unlabeled_refused"] == len(records) - trusted.sum()


def test_the_row_cap_keeps_a_fixed_sample(setup, fresh_lines):
    model = load_model(setup.model_dir)
    selection = UploadSelection()
    selection.add(read_records(kdd_bytes(fresh_lines[:500])), model, validation_fraction=0.2,
                  random_state=0, min_confidence=0.5)
    a, b = selection.normal_rows(50, 0), selection.normal_rows(50, 0)
    assert len(a) == 50
    pd.testing.assert_frame_equal(a, b)


# --- the gate ------------------------------------------------------------------------------


@pytest.mark.parametrize(("after", "promote"), [
    ({"balanced_f1": 0.90, "auroc": 0.95}, True),
    ({"balanced_f1": 0.92, "auroc": 0.96}, True),
    ({"balanced_f1": 0.896, "auroc": 0.946}, True),  # 0.4 point lower: within tolerance
    ({"balanced_f1": 0.894, "auroc": 0.95}, False),  # 0.6 point lower F1
    ({"balanced_f1": 0.90, "auroc": 0.944}, False),  # 0.6 point lower AUROC
    ({"balanced_f1": 0.90, "auroc": None}, True),  # no AUROC: judged on F1 alone
])
def test_gate_refuses_a_drop_beyond_half_a_point(after, promote):
    ok, reason = gate({"balanced_f1": 0.90, "auroc": 0.95}, after, tolerance=0.005)
    assert ok is promote
    assert reason.startswith("candidate worse") is not promote


# --- whole runs ----------------------------------------------------------------------------


def test_a_better_candidate_is_promoted_and_the_old_version_kept(setup, fresh_lines):
    old = load_model(setup.model_dir)
    register_batches(setup.registry, fresh_lines, 10)
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "promoted", result.reason
    new = load_model(setup.model_dir)
    assert new.version == result.version != old.version
    assert {v["version"] for v in list_versions(setup.model_dir)} == {old.version, new.version}
    assert new.card["retraining"]["previous_version"] == old.version
    assert new.card["training_data"]["uploads"]["files"] == 10
    assert new.card["training_data"]["fit_rows"] > old.card["training_data"]["fit_rows"]
    assert setup.registry.counts() == {"pending": 0, "used": 0, "archived": 10, "quarantined": 0}
    assert len(list((setup.data_dir / "uploaded_logs" / "archived").iterdir())) == 10
    (run,) = setup.registry.runs()
    assert run["outcome"] == "promoted"
    assert run["metrics_before"]["balanced_f1"] > 0 and run["metrics_after"]["auroc"] > 0
    assert run["previous_version"] == old.version


def test_anonymous_attack_rows_labeled_normal_teach_nothing(setup, fresh_lines):
    """An anonymous "normal" label is a claim: rows the model flags stay out of the fit set,
    so the candidate is the current model again and nothing changes."""
    before = model_bytes(setup)
    attacks = [line for line in fresh_lines if line.split(",")[41] != "normal"]
    register_batches(setup.registry, attacks, 10, relabel="normal")
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "rejected"
    assert model_bytes(setup) == before
    assert not (setup.model_dir / VERSIONS_DIR).exists()
    assert setup.registry.counts() == {"pending": 0, "used": 10, "archived": 0,
                                       "quarantined": 0}


def test_a_poisoned_trusted_candidate_is_still_rejected_by_the_gate(setup, fresh_lines):
    """Attack rows uploaded with the admin token and the label "normal" (an admin's mistake)
    would teach the model that attacks are normal; the gate sees the candidate is worse."""
    before = model_bytes(setup)
    attacks = [line for line in fresh_lines if line.split(",")[41] != "normal"]
    register_batches(setup.registry, attacks, 10, relabel="normal", trusted=True)
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "rejected"
    assert "worse" in result.reason
    assert result.metrics_after["balanced_f1"] < result.metrics_before["balanced_f1"] - 0.005
    assert model_bytes(setup) == before
    assert not (setup.model_dir / VERSIONS_DIR).exists()
    assert setup.registry.counts() == {"pending": 0, "used": 10, "archived": 0, "quarantined": 0}
    for upload in setup.registry.uploads():
        assert setup.registry.path_of(upload).is_file()
        assert "/archived/" not in upload.stored_path


def test_a_failed_run_is_recorded_and_keeps_model_uploads_and_counter(setup, fresh_lines):
    before = model_bytes(setup)
    register_batches(setup.registry, fresh_lines, 12)
    setup.settings.train_file = setup.data_dir / "missing-train.txt"
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "failed"
    assert "missing-train.txt is missing" in result.reason
    assert str(setup.data_dir) not in result.reason
    assert model_bytes(setup) == before
    assert setup.registry.counts()["pending"] == 12
    assert setup.registry.state() == {"uploads_since_retrain": 2, "requests": 0}
    (run,) = setup.registry.runs()
    assert (run["outcome"], run["reason"]) == ("failed", result.reason)
    assert run["finished_at"] is not None


def test_a_corrupt_current_model_fails_the_run_without_touching_it(setup, fresh_lines):
    (setup.model_dir / MODEL_FILE).write_bytes(b"not a model")
    register_batches(setup.registry, fresh_lines, 10)
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "failed" and "corrupt" in result.reason
    assert (setup.model_dir / MODEL_FILE).read_bytes() == b"not a model"
    assert setup.registry.counts()["pending"] == 10


def test_queued_requests_coalesce_into_one_run_that_takes_every_pending_upload(
        setup, fresh_lines):
    register_batches(setup.registry, fresh_lines, 20, size=50)  # two batches of 10
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0  # the queue, not the gate
    assert setup.registry.state()["requests"] == 1
    results = run_queued(setup.settings, setup.registry)
    assert [r.outcome for r in results] == ["promoted"]
    assert setup.registry.state()["requests"] == 0
    assert setup.registry.counts()["archived"] == 20


def test_a_request_queued_during_a_run_gets_one_more_run_after_it(setup, fresh_lines):
    """While a run is in progress, any number of batches queue one more run, not one each."""
    register_batches(setup.registry, fresh_lines, 10, size=50)
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    calls = []

    def trainer(*args, **kwargs):  # three more batches arrive during the first run
        if not calls:
            for i in range(30):
                register(setup.registry, kdd_bytes(fresh_lines[1000 + i * 5:1005 + i * 5]),
                         f"late{i}.txt", threshold=10)
            assert setup.registry.state()["requests"] == 1
        calls.append(1)
        return train(*args, **kwargs)

    results = run_queued(setup.settings, setup.registry, trainer=trainer)
    assert len(results) == 2
    first, second = sorted(setup.registry.runs(), key=lambda run: run["id"])
    assert first["finished_at"] <= second["started_at"]
    assert second["uploads_used"] == 30
    assert setup.registry.state()["requests"] == 0


def test_uploads_in_a_promoted_model_feed_later_candidates(setup, fresh_lines):
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    register_batches(setup.registry, fresh_lines, 10, size=50)
    (first,) = run_queued(setup.settings, setup.registry)
    register_batches(setup.registry, fresh_lines[500:], 10, size=50)
    (second,) = run_queued(setup.settings, setup.registry)
    assert (first.outcome, second.outcome) == ("promoted", "promoted")
    uploads = load_model(setup.model_dir).card["training_data"]["uploads"]
    assert uploads["files"] == 20
    assert len(set(uploads["sha256"])) == 20


def test_nothing_runs_without_a_request_unless_forced(setup, fresh_lines):
    register_batches(setup.registry, fresh_lines, 3)
    assert run_queued(setup.settings, setup.registry) == []
    assert setup.registry.runs() == []
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    (result,) = run_queued(setup.settings, setup.registry, force=True)
    assert result.outcome == "promoted"


def test_a_process_that_finds_the_lock_taken_leaves_the_request_queued(setup, fresh_lines):
    register_batches(setup.registry, fresh_lines, 10)
    holder = RetrainLock(setup.data_dir)
    assert holder.acquire()
    try:
        assert run_queued(setup.settings, setup.registry, lock_wait=0.1) is None
    finally:
        holder.release()
    assert setup.registry.state()["requests"] == 1
    assert setup.registry.runs() == []


def test_only_uploads_of_the_models_input_kind_feed_it(setup, fresh_lines):
    zeek = register(setup.registry, zeek_upload()).upload
    assert zeek.input_kind == "zeek"
    register_batches(setup.registry, fresh_lines, 10)
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "promoted"
    statuses = {u.sha256: u.status for u in setup.registry.uploads()}
    assert statuses.pop(zeek.sha256) == "pending"
    assert set(statuses.values()) == {"archived"}


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_an_interrupted_run_is_closed_as_failed_and_its_uploads_retried(setup, fresh_lines):
    register_batches(setup.registry, fresh_lines, 10)
    assert setup.registry.take_request()  # the killed process had taken the request
    run_id = setup.registry.start_run(trigger="upload", pid=_dead_pid())
    assert len(setup.registry.claim_pending(run_id, "kdd")) == 10
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    (result,) = run_queued(setup.settings, setup.registry, force=True)
    runs = {run["id"]: run for run in setup.registry.runs()}
    assert runs[run_id]["outcome"] == "failed"
    assert "interrupted" in runs[run_id]["reason"]
    assert result.outcome == "promoted"
    assert setup.registry.counts()["archived"] == 10


def test_a_run_killed_right_after_promoting_is_completed_as_promoted(setup, fresh_lines):
    register_batches(setup.registry, fresh_lines, 10)
    run_id = setup.registry.start_run(trigger="upload", pid=_dead_pid())
    setup.registry.claim_pending(run_id, "kdd")
    setup.registry.set_run_version(run_id, load_model(setup.model_dir).version)
    assert close_interrupted_runs(setup.settings, setup.registry) == 1
    (run,) = setup.registry.runs()
    assert run["outcome"] == "promoted"
    assert setup.registry.counts()["archived"] == 10
    assert all(setup.registry.path_of(u).is_file() for u in setup.registry.uploads())


def test_a_custom_trainer_sees_the_trusted_rows_only(setup, test_lines):
    """retrain_once hands train() the selected upload rows through extra_normal."""
    seen = {}

    def spy(*args, **kwargs):
        seen["extra"] = kwargs["extra_normal"]
        return train(*args, **kwargs)

    register_batches(setup.registry, test_lines, 3, trusted=True)
    result = retrain_once(setup.settings, setup.registry, trainer=spy)
    labels = read_records(kdd_bytes(test_lines[:300])).labels
    assert result.outcome in {"promoted", "rejected"}
    assert len(seen["extra"]) < int((labels == "normal").sum())  # 20% held out
    assert len(seen["extra"]) > 0


# --- rollback ------------------------------------------------------------------------------


@pytest.fixture
def two_versions(setup, fresh_lines):
    old = load_model(setup.model_dir).version
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    register_batches(setup.registry, fresh_lines, 10)
    (result,) = run_queued(setup.settings, setup.registry)
    assert result.outcome == "promoted"
    return setup, old, result.version


def test_rollback_goes_back_to_the_previous_version_and_can_be_undone(two_versions):
    setup, old, new = two_versions
    assert rollback(setup.model_dir, setup.data_dir)[:2] == (new, old)
    assert load_model(setup.model_dir).version == old
    assert json.loads((setup.model_dir / "model_card.json").read_text())["model_version"] == old
    assert rollback(setup.model_dir, setup.data_dir, new)[:2] == (old, new)
    assert load_model(setup.model_dir).version == new


@pytest.mark.parametrize("version", ["nope", "../model", "20990101T000000Z-00000000"])
def test_rollback_to_an_unknown_version_changes_nothing(two_versions, version):
    setup, _, new = two_versions
    with pytest.raises(RetrainError, match="no archived model version"):
        rollback(setup.model_dir, setup.data_dir, version)
    assert load_model(setup.model_dir).version == new


def test_rollback_waits_for_no_retrain(two_versions):
    setup, _, new = two_versions
    holder = RetrainLock(setup.data_dir)
    assert holder.acquire()
    try:
        with pytest.raises(RetrainBusy):
            rollback(setup.model_dir, setup.data_dir, lock_wait=0.1)
    finally:
        holder.release()
    assert load_model(setup.model_dir).version == new


def test_rollback_without_an_earlier_version_says_so(setup):
    with pytest.raises(RetrainError, match="no earlier model version"):
        rollback(setup.model_dir, setup.data_dir)


def test_a_run_with_nothing_new_leaves_the_model_alone(setup, fresh_lines):
    """Seeds are fixed, so retraining on the same data gives the same centroids: no new
    version is written for it. (Trusted uploads: the same rows train every run. Anonymous
    rows are judged again by each new current model, so their selection may change.)"""
    register_batches(setup.registry, fresh_lines, 10, trusted=True)
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    (first,) = run_queued(setup.settings, setup.registry)
    assert first.outcome == "promoted"
    before = model_bytes(setup)
    (second,) = run_queued(setup.settings, setup.registry, force=True)
    assert second.outcome == "rejected" and "nothing new to learn" in second.reason
    assert model_bytes(setup) == before
