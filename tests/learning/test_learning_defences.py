"""Defences against poisoning through uploads, below the HTTP layer: anonymous labels are
claims, repeated rows count once, caps on one upload's and one client's rows, the gate judges
on rows no anonymous uploader controls and per attack category, a rollback quarantines what
the rolled-back version learned, runs coalesce and are all kept, the quota on kept bytes."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest
from learning_helpers import kdd_bytes, register

from settings import SettingError, load_settings
from utils.model_store import load_model
from utils.preprocessing import read_records
from utils.registry import (
    NotQuarantined,
    UnknownUpload,
    UploadQuota,
)
from utils.registry import (
    SQLiteRegistry as UploadRegistry,
)
from utils.retraining import RetrainSettings, UploadSelection, gate, rollback, run_queued
from utils.scoring import score_records


def row_keys(features: pd.DataFrame) -> set[int]:
    return set(pd.util.hash_pandas_object(features, index=False).tolist())


def select(model, *uploads, **caps) -> UploadSelection:
    """``uploads``: (records, trusted, client) in the order a run feeds them."""
    selection = UploadSelection(**caps)
    for records, trusted, client in uploads:
        selection.add(records, model, validation_fraction=0.2, random_state=0,
                      min_confidence=0.5, trusted=trusted, client=client)
    return selection


def no_gate(settings: RetrainSettings) -> None:
    settings.tolerance = settings.category_tolerance = 1.0


# --- anonymous labels are claims -----------------------------------------------------------


def test_anonymous_rows_labeled_normal_train_only_where_the_model_calls_them_normal(
        setup, test_lines):
    model = load_model(setup.model_dir)
    attacks = [line for line in test_lines if line.split(",")[41] != "normal"][:1500]
    records = read_records(kdd_bytes(attacks, relabel="normal"))
    scored = score_records(model, records)
    confirmed = (scored.severity == "Normal") & (scored.confidence >= 0.5)
    assert scored.is_anomaly.sum() > 1000  # the model flags most of them

    selection = select(model, (records, False, "10.0.0.9"))
    trained = selection.normal_rows(10**6, 0)
    assert row_keys(trained) == row_keys(records.features[confirmed])
    assert not row_keys(trained) & row_keys(records.features[scored.is_anomaly])
    assert selection.counts["claimed_normal_refused"] == len(records) - confirmed.sum()
    assert selection.validation_features == []  # nothing of theirs reaches the gate


def test_anonymous_attack_labels_keep_rows_out_of_both_fit_and_gate(setup, test_lines):
    model = load_model(setup.model_dir)
    records = read_records(kdd_bytes(test_lines[:2000]))
    selection = select(model, (records, False, None))
    attacks = records.features[(records.labels != "normal").to_numpy()]
    assert not row_keys(selection.normal_rows(10**6, 0)) & row_keys(attacks)
    assert selection.validation_features == []
    assert selection.counts["claimed_attack_ignored"] == len(attacks)


def test_trusted_normal_labels_override_the_model(setup, test_lines):
    model = load_model(setup.model_dir)
    normals = [line for line in test_lines if line.split(",")[41] == "normal"][:1000]
    records = read_records(kdd_bytes(normals))
    flagged = score_records(model, records).is_anomaly
    assert flagged.any()
    selection = select(model, (records, True, None))
    trained = row_keys(selection.normal_rows(10**6, 0))
    held = row_keys(selection.validation_features[0])
    assert trained | held == row_keys(records.features)
    assert trained & row_keys(records.features[flagged])  # flagged rows teach it too


# --- bounded influence ---------------------------------------------------------------------


def test_repeated_rows_count_once_across_the_pool(setup, fresh_lines):
    model = load_model(setup.model_dir)
    lines = fresh_lines[:300]
    repeated = read_records(kdd_bytes(lines * 5))
    again = read_records(kdd_bytes(lines[:100] * 3))
    once = select(model, (read_records(kdd_bytes(lines)), False, "a"))
    twice = select(model, (repeated, False, "a"), (again, False, "b"))
    pd.testing.assert_frame_equal(twice.normal_rows(10**6, 0), once.normal_rows(10**6, 0))
    assert twice.counts["duplicate_rows"] == 4 * 300 + 300


def test_one_anonymous_upload_and_one_client_add_at_most_their_caps(setup, fresh_lines):
    model = load_model(setup.model_dir)
    uploads = [read_records(kdd_bytes(fresh_lines[i * 1000:(i + 1) * 1000])) for i in range(4)]
    free = select(model, *[(u, False, "x") for u in uploads])
    accepted = [len(part) for part in free.extra_normal]
    assert min(accepted) > 300  # the caps below bind

    capped = select(model, (uploads[0], False, "x"), (uploads[1], False, "x"),
                    (uploads[2], False, "y"), (uploads[3], True, "x"),
                    max_rows_per_upload=300, max_rows_per_client=500)
    assert [len(part) for part in capped.extra_normal] == [
        300, 200,  # client x: 300, then what is left of its 500
        300,  # client y has its own allowance
        len(select(model, (uploads[3], True, "x")).extra_normal[0])]  # trusted: no cap
    assert capped.counts["capped_rows"] == sum(accepted[:3]) - 800
    first = capped.extra_normal[0]
    assert row_keys(first) <= row_keys(free.extra_normal[0])
    again = select(model, (uploads[0], False, "x"), max_rows_per_upload=300)
    pd.testing.assert_frame_equal(again.extra_normal[0], first)  # a fixed sample


def test_settings_have_documented_defaults_and_refuse_bad_values_by_name(tmp_path):
    config = load_settings("scripts", {})
    assert (config["RETRAIN_CATEGORY_TOLERANCE"], config["RETRAIN_MAX_ROWS_PER_UPLOAD"],
            config["RETRAIN_MAX_ROWS_PER_CLIENT"]) == (0.02, 2000, 10000)
    settings = RetrainSettings(tmp_path, tmp_path)  # what tests and callers get by default
    assert (settings.category_tolerance, settings.max_rows_per_upload,
            settings.max_rows_per_client) == (0.02, 2000, 10000)
    for variable, raw in [("ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE", "lots"),
                          ("ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE", "-0.1"),
                          ("ANOMALYZE_RETRAIN_TOLERANCE", "nan"),
                          ("ANOMALYZE_RETRAIN_MAX_ROWS_PER_UPLOAD", "2.5"),
                          ("ANOMALYZE_RETRAIN_MAX_ROWS_PER_CLIENT", "-1"),
                          ("ANOMALYZE_RETRAIN_K", "4,x")]:
        for reader in ("api", "scripts"):  # the API refuses to start, the retrain to run
            with pytest.raises(SettingError, match=variable):
                load_settings(reader, {variable: raw})


# --- the gate ------------------------------------------------------------------------------


def rates(**by_category: float) -> dict:
    return {"balanced_f1": 0.9, "auroc": 0.95, "detection_rate_by_category": {
        name: {"rate": rate, "total": 100, "detected": round(100 * rate)}
        for name, rate in by_category.items()}}


@pytest.mark.parametrize(("after", "promote"), [
    (rates(DoS=0.99, Probe=0.95, R2L=0.80, U2R=0.90), True),
    (rates(DoS=0.99, Probe=0.95, R2L=0.781, U2R=0.90), True),  # 1.9 points lower
    (rates(DoS=0.99, Probe=0.95, R2L=0.779, U2R=0.90), False),  # 2.1 points lower
    (rates(DoS=0.95, Probe=0.99, R2L=0.90, U2R=0.95), False),  # DoS given up for the rest
    (rates(DoS=0.99, Probe=0.95, R2L=0.80), True),  # a category absent after: not judged
])
def test_gate_refuses_a_category_whose_detection_drops_beyond_its_tolerance(after, promote):
    ok, reason = gate(rates(DoS=0.99, Probe=0.95, R2L=0.80, U2R=0.90), after, tolerance=0.005,
                      category_tolerance=0.02)
    assert ok is promote, reason
    assert ("detection" in reason.split(":")[0]) is not promote


def test_the_gate_judges_on_the_training_files_split_and_trusted_rows_only(setup, test_lines):
    """Anonymous labeled rows, attack or normal, never join the gate's validation set."""
    no_gate(setup.settings)
    for i in range(10):
        register(setup.registry, kdd_bytes(test_lines[i * 200:(i + 1) * 200]), f"a{i}.txt")
    (anonymous,) = run_queued(setup.settings, setup.registry, force=True)
    base_rows = anonymous.metrics_before["labeled_samples"] if anonymous.metrics_before else None

    for i in range(3):
        register(setup.registry, kdd_bytes(test_lines[3000 + i * 200:3200 + i * 200]),
                 f"t{i}.txt", trusted=True)
    (trusted,) = run_queued(setup.settings, setup.registry, force=True)
    labels = read_records(kdd_bytes(test_lines[3000:3600])).labels
    held = int(np.sum(labels != "normal")) + round(0.2 * int(np.sum(labels == "normal")))
    split = trusted.metrics_before["labeled_samples"] - held
    assert abs(split - 600) <= 3  # 20% of the 3,000-row training file (rounded per category)
    assert base_rows == split, anonymous.reason


# --- rollback quarantines ------------------------------------------------------------------


def promote(setup, lines, n: int = 10, size: int = 60, *, trusted: bool = True,
            prefix: str = "u") -> list[str]:
    shas = [register(setup.registry, kdd_bytes(lines[i * size:(i + 1) * size]),
                     f"{prefix}{i}.txt", trusted=trusted).upload.sha256 for i in range(n)]
    (result,) = run_queued(setup.settings, setup.registry, force=True)
    assert result.outcome == "promoted", result.reason
    return shas


def test_rollback_quarantines_what_the_rolled_back_version_learned_and_it_never_trains_again(
        setup, fresh_lines):
    no_gate(setup.settings)
    first = promote(setup, fresh_lines, prefix="a")
    second = promote(setup, fresh_lines[1000:], prefix="b")
    result = rollback(setup.model_dir, setup.data_dir)
    assert sorted(result.quarantined) == sorted(second)  # the first batch is in both models
    statuses = {u.sha256: u.status for u in setup.registry.uploads()}
    assert {statuses[s] for s in second} == {"quarantined"}
    assert {statuses[s] for s in first} == {"archived"}
    assert setup.registry.counts()["quarantined"] == 10

    honest = promote(setup, fresh_lines[2000:], prefix="c")
    learned = set(load_model(setup.model_dir).card["training_data"]["uploads"]["sha256"])
    assert learned == set(first) | set(honest)
    assert {u.status for u in setup.registry.uploads() if u.sha256 in second} == {"quarantined"}


def test_a_released_upload_trains_again_from_the_next_run(setup, fresh_lines):
    no_gate(setup.settings)
    promote(setup, fresh_lines)
    quarantined = rollback(setup.model_dir, setup.data_dir).quarantined
    released = setup.registry.release(quarantined[0])
    assert released.status == "pending"
    assert setup.registry.path_of(released).is_file()  # moved back out of archived/
    assert "/archived/" not in released.stored_path
    (result,) = run_queued(setup.settings, setup.registry, force=True)
    assert result.outcome == "promoted"
    learned = load_model(setup.model_dir).card["training_data"]["uploads"]["sha256"]
    assert learned == [quarantined[0]]
    assert setup.registry.find(quarantined[0]).status == "archived"


def test_release_names_unknown_and_unquarantined_uploads(setup, fresh_lines):
    sha = register(setup.registry, kdd_bytes(fresh_lines[:50])).upload.sha256
    with pytest.raises(UnknownUpload):
        setup.registry.release("0" * 64)
    with pytest.raises(NotQuarantined, match="pending"):
        setup.registry.release(sha)


# --- coalescing and the run history --------------------------------------------------------


def test_a_hundred_one_row_uploads_queue_at_most_one_run(setup, fresh_lines):
    due = [register(setup.registry, kdd_bytes([line]), f"r{i}.txt", threshold=10).retrain_due
           for i, line in enumerate(fresh_lines[:100])]
    assert sum(due) == 10  # every batch still wakes the retrain process
    assert setup.registry.state() == {"uploads_since_retrain": 0, "requests": 1}
    setup.registry.request_retrain()
    assert setup.registry.state()["requests"] == 1


def test_the_run_history_is_paged_by_id_and_never_trimmed(tmp_path):
    registry = UploadRegistry(tmp_path)
    ids = [registry.start_run(trigger="test") for _ in range(25)]
    for run_id in ids:
        registry.finish_run(run_id, "failed", "test")
    assert registry.run_count() == 25
    pages, before = [], None
    while True:
        page = registry.runs(10, before=before)
        if not page:
            break
        pages.append([run["id"] for run in page])
        before = page[-1]["id"]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [run_id for page in pages for run_id in page] == sorted(ids, reverse=True)


# --- the registry: trust, client, quota, schema --------------------------------------------


def test_uploads_record_trust_and_client_and_an_admin_copy_makes_content_trusted(setup,
                                                                                  fresh_lines):
    data = kdd_bytes(fresh_lines[:40])
    first = register(setup.registry, data, client="10.1.1.1")
    assert (first.upload.trusted, first.upload.client) == (False, "10.1.1.1")
    again = register(setup.registry, data, trusted=True, client="10.2.2.2")
    assert (again.duplicate, again.stored, again.reason) == (True, False, "duplicate")
    assert setup.registry.find(first.upload.sha256).trusted is True
    assert setup.registry.find(first.upload.sha256).client == "10.1.1.1"


def test_the_quota_refuses_to_keep_past_the_total_or_a_clients_window(tmp_path, fresh_lines):
    registry = UploadRegistry(tmp_path)
    files = [kdd_bytes(fresh_lines[i * 10:(i + 1) * 10]) for i in range(6)]
    size = max(map(len, files))
    quota = UploadQuota(total_bytes=4 * size, client_bytes=2 * size,
                        client_window_seconds=3600)
    results = [register(registry, data, f"q{i}.txt", quota=quota, client=client)
               for i, (data, client) in enumerate(zip(files, ["a", "a", "a", "b", "b", "c"],
                                                      strict=True))]
    assert [(r.stored, r.reason) for r in results] == [
        (True, None), (True, None), (False, "quota_client"),
        (True, None), (True, None), (False, "quota_total")]
    assert results[2].upload is None and results[2].retrain_due is False
    assert len(registry.uploads()) == 4
    assert registry.state()["uploads_since_retrain"] == 4
    assert not list((tmp_path / "incoming").iterdir())  # refused temp files are the caller's

    with sqlite3.connect(registry.db_path) as db:  # a day later, client a may keep again
        db.execute("UPDATE uploads SET received_at = '2000-01-01T00:00:00.000Z'")
    roomy = UploadQuota(total_bytes=10 * size, client_bytes=2 * size, client_window_seconds=3600)
    assert register(registry, files[2], quota=roomy, client="a").stored


def test_concurrent_uploads_never_overshoot_the_quota(tmp_path, fresh_lines):
    registry = UploadRegistry(tmp_path)
    files = [kdd_bytes(fresh_lines[i * 5:(i + 1) * 5]) for i in range(40)]
    quota = UploadQuota(total_bytes=sum(map(len, files[:10])), client_bytes=10**9,
                        client_window_seconds=60)
    threads = [threading.Thread(target=register, args=(registry, data, f"c{i}.txt"),
                                kwargs={"quota": quota}) for i, data in enumerate(files)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = registry.uploads()
    assert kept and sum(u.size for u in kept) <= quota.total_bytes


def test_a_registry_from_before_trust_and_quarantine_is_migrated(tmp_path):
    with sqlite3.connect(tmp_path / "anomalyze.sqlite3") as db:
        db.executescript("""
        CREATE TABLE uploads (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,
            original_name TEXT NOT NULL, stored_path TEXT NOT NULL, size INTEGER NOT NULL,
            rows INTEGER NOT NULL, has_labels INTEGER NOT NULL, input_kind TEXT NOT NULL,
            received_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'used', 'archived')), run_id INTEGER);
        INSERT INTO uploads VALUES (1, 'ab', 'x.txt', 'uploaded_logs/x.txt', 3, 1, 1, 'kdd',
            '2026-01-01T00:00:00.000Z', 'archived', 4);
        """)
    registry = UploadRegistry(tmp_path)
    (upload,) = registry.uploads()
    assert (upload.sha256, upload.status, upload.run_id, upload.trusted, upload.client) == (
        "ab", "archived", 4, False, None)
    assert registry.quarantine(["ab"]) == ["ab"]
    assert registry.counts()["quarantined"] == 1
    UploadRegistry(tmp_path)  # opening it again changes nothing
    assert registry.find("ab").status == "quarantined"
