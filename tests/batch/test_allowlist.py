"""A batch job applies the allow-list kept in the registry the settings name: the rows it
allows are reported as allow-listed with the entry's id, are not alerts, and the summary
counts anomalies, alerts and allow-listed rows alike everywhere it counts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from settings import script_settings
from tests.helpers.batch_scoring import MODEL_DIR, in_process, write_log, zeek_lines
from utils.allowlist import parse_entry
from utils.backends import open_backends
from utils.batch.allowed import job_allowlist
from utils.batch.job import JobOptions, run_job
from utils.batch.readers import kdd_records

pytestmark = pytest.mark.e2e  # a real Dask LocalCluster of worker processes

PIECE_MB = 0.05  # several pieces per file


def _registry_with_entry(tmp_path, monkeypatch, host: str):
    monkeypatch.setenv("ANOMALYZE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ANOMALYZE_DATABASE_URL", raising=False)
    config = script_settings()
    registry = open_backends(config["DATA_DIR"], config["MODEL_DIR"]).registry
    entry = registry.add_allow_entry(parse_entry(
        {"host": host, "reason": "the backup server's nightly run"}, added_by="test"))
    return config, entry


def test_allow_listed_anomalies_are_reported_but_are_not_alerts(local_client, model, tmp_path,
                                                                  monkeypatch):
    header, rows = zeek_lines(3_000, seed=5)
    whole = ("\n".join([*header, *rows]) + "\n").encode()
    flagged = in_process(model, whole)["is_anomaly"].to_numpy(bool)
    sources = kdd_records(whole).identity["id.orig_h"].to_numpy(dtype=object)
    counts = pd.Series(sources[flagged]).value_counts()
    host = str(counts.index[0])  # the source with the most anomalies; others have some too
    expected = flagged & (sources == host)
    assert 0 < expected.sum() < flagged.sum()
    config, entry = _registry_with_entry(tmp_path, monkeypatch, host)
    log = write_log(tmp_path / "in" / "sensor-a" / "2023-11-14" / "conn.22:00:00-23:00:00.log",
                    header, rows)

    summary = run_job(JobOptions(inputs=[str(tmp_path / "in")], out=tmp_path / "out",
                                 model_dir=MODEL_DIR, piece_mb=PIECE_MB, alerts=True,
                                 allowlist=job_allowlist(config)), local_client)

    frame = pd.read_parquet(tmp_path / "out" / "zeek").sort_values("row")
    assert frame["file"].eq(str(log)).all() and len(frame) == 3_000
    # Counts of mismatches, not whole lists: pytest's diff of two long lists takes minutes.
    assert int((frame["is_anomaly"].to_numpy(bool) != flagged).sum()) == 0
    assert int((frame["allowlisted"].to_numpy(bool) != expected).sum()) == 0
    entries = frame["allowlist_entry"]
    assert entries[frame["allowlisted"]].eq(entry.id).all()
    assert entries[~frame["allowlisted"]].isna().all()

    alerts = [json.loads(line) for path in (tmp_path / "out" / "alerts").glob("*.ndjson")
              for line in path.read_text().splitlines()]
    alert_uids = {doc["zeek"]["uid"] for doc in alerts}
    uids = frame["uid"].to_numpy(dtype=object)
    assert alert_uids == set(uids[flagged & ~expected])
    assert not alert_uids & set(uids[expected])

    n_flagged, n_allowed = int(flagged.sum()), int(expected.sum())
    assert (summary["anomalies"], summary["allowlisted"], summary["alerts"]) == (
        n_flagged, n_allowed, n_flagged - n_allowed)
    assert summary["allowlist_entries"] == 1
    for part in ("by_sensor_day", "by_file"):
        assert sum(e["allowlisted"] for e in summary[part]) == n_allowed
        assert all(e["alerts"] == e["anomalies"] - e["allowlisted"] for e in summary[part])
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["alerts"] == (
        n_flagged - n_allowed)


def test_without_a_list_no_row_is_allow_listed(local_client, tmp_path):
    header, rows = zeek_lines(600, seed=6)
    write_log(tmp_path / "in" / "conn.log", header, rows)

    summary = run_job(JobOptions(inputs=[str(tmp_path / "in")], out=tmp_path / "out",
                                 model_dir=MODEL_DIR), local_client)

    frame = pd.read_parquet(tmp_path / "out" / "zeek")
    assert not frame["allowlisted"].any() and frame["allowlist_entry"].isna().all()
    assert summary["allowlisted"] == 0 and summary["alerts"] == summary["anomalies"]


def test_a_registry_that_cannot_be_opened_warns_and_applies_no_list(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    warnings: list[str] = []

    entries = job_allowlist({"DATA_DIR": blocker, "MODEL_DIR": MODEL_DIR,
                             "DATABASE_URL": None}, warn=warnings.append)

    assert entries == ()
    assert len(warnings) == 1 and "no allow-list applied" in warnings[0]


def test_the_command_can_skip_the_allow_list():
    from score_logs import parse_args

    assert parse_args(["x", "--out", "o", "--no-allowlist"]).no_allowlist
    assert not parse_args(["x", "--out", "o"]).no_allowlist
