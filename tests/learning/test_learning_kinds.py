"""Learning from uploads stays with the KDD model: a Zeek model beside it changes nothing,
Zeek uploads feed no model, and rolling a Zeek model back quarantines no upload."""

from __future__ import annotations

import pytest

from tests.helpers.kdd_data import kdd_bytes
from tests.helpers.models import train_zeek_model
from tests.helpers.registry import register
from tests.helpers.zeek_logs import conn_rows, tsv_log, zeek_sample
from utils.model_store import MODEL_FILE, LocalModelStore, load_model, save_model
from utils.readers import read_records
from utils.retraining import rollback, run_queued
from utils.training import train

pytestmark = pytest.mark.slow  # the runs train on NSL-KDD rows


def test_a_zeek_model_beside_the_kdd_model_changes_nothing_in_retraining(setup, fresh_lines):
    zeek_folder = train_zeek_model(setup.model_dir, seed=0)
    zeek_before = (zeek_folder / MODEL_FILE).read_bytes()
    kdd_before = load_model(setup.model_dir).version
    zeek = register(setup.registry, zeek_sample(), "conn.log").upload
    for i in range(10):
        register(setup.registry, kdd_bytes(fresh_lines[i * 100:(i + 1) * 100]), f"u{i}.txt")
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0

    (result,) = run_queued(setup.settings, setup.registry)

    assert result.outcome == "promoted"
    assert load_model(setup.model_dir).version == result.version != kdd_before
    assert (zeek_folder / MODEL_FILE).read_bytes() == zeek_before
    assert len(LocalModelStore(zeek_folder).versions()) == 1
    statuses = {u.sha256: u.status for u in setup.registry.uploads()}
    assert statuses.pop(zeek.sha256) == "pending"  # fed no model
    assert set(statuses.values()) == {"archived"}


def test_a_run_refuses_to_teach_a_zeek_model_from_uploads(setup):
    """A folder whose current model is a Zeek one (the layout before there was a folder per
    kind) is not retrained from Zeek uploads: an uploader's traffic is only a claim."""
    zeek = load_model(train_zeek_model(setup.model_dir / "elsewhere", seed=0))
    save_model(zeek.pipeline, zeek.card, setup.model_dir)
    before = (setup.model_dir / MODEL_FILE).read_bytes()
    for seed in range(3):
        register(setup.registry, tsv_log(conn_rows(300, seed=seed, rate=5.0)), "conn.log")

    (result,) = run_queued(setup.settings, setup.registry, force=True)

    assert result.outcome == "failed"
    assert "only a kdd model learns from uploads" in result.reason
    assert (setup.model_dir / MODEL_FILE).read_bytes() == before
    assert {u.status for u in setup.registry.uploads()} == {"pending"}


def test_rolling_back_a_zeek_model_quarantines_no_upload(setup, fresh_lines):
    kdd_upload = register(setup.registry, kdd_bytes(fresh_lines[:100])).upload
    zeek_upload = register(setup.registry, zeek_sample(), "conn.log").upload
    zeek_folder = train_zeek_model(setup.model_dir, seed=0)
    first = load_model(zeek_folder).version
    records = read_records(tsv_log(conn_rows(1500, seed=4, rate=5.0)))
    second = train(records, n_clusters=(3, 4, 5), random_state=4, source={
        "file": "conn.log", "uploads": {"sha256": [kdd_upload.sha256, zeek_upload.sha256]}})
    store = LocalModelStore(zeek_folder)
    store.promote(store.keep(second.pipeline, second.card))
    kdd_before = (setup.model_dir / MODEL_FILE).read_bytes()

    result = rollback(setup.model_dir, setup.data_dir, kind="zeek")

    assert result == (second.card["model_version"], first, [])
    assert load_model(zeek_folder).version == first
    assert (setup.model_dir / MODEL_FILE).read_bytes() == kdd_before
    assert {u.status for u in setup.registry.uploads()} == {"pending"}
