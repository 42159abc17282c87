"""The hosts view and timeline of a Zeek upload (`hosts`, `timeline` in /api/predict) and the
summary's `warnings` when the file's kind differs from the model's."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from server import zeek_overview
from server.analysis import analyse_file
from server.zeek_overview import ZeekOverview
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.model_store import load_model
from utils.schema import SEVERITIES

ROWS = 3000
ANOMALY_SEVERITIES = list(SEVERITIES[1:])


@pytest.fixture(scope="module")
def zeek_log() -> bytes:
    """3,000 connections over about 25 minutes, some 20 source and 3 destination hosts."""
    return tsv_log(conn_rows(ROWS, seed=3, rate=2.0))


def post(client, body: bytes, query: str = ""):
    return client.post(f"/api/predict{query}", data={"file": (io.BytesIO(body), "conn.log")},
                       content_type="multipart/form-data")


def expected_hosts(rows: pd.DataFrame, column: str) -> list[dict]:
    """The ranking the docs promise, worked out from the per-row CSV."""
    flagged = rows[rows["is_anomaly"]]
    ranked = []
    for host, group in flagged.groupby(column):
        worst = max(SEVERITIES.index(s) for s in group["severity"])
        ranked.append({"host": host, "anomalies": len(group),
                       "connections": int((rows[column] == host).sum()),
                       "max_severity": SEVERITIES[worst]})
    ranked.sort(key=lambda h: (-h["anomalies"], -SEVERITIES.index(h["max_severity"]),
                               h["host"]))
    return ranked[:zeek_overview.HOSTS_REPORTED]


def test_hosts_and_timeline_count_every_flagged_row_not_only_the_returned_ones(client,
                                                                              zeek_log):
    body = post(client, zeek_log, "?limit=5").get_json()
    rows = pd.read_csv(io.BytesIO(post(client, zeek_log, "?format=csv").data),
                       true_values=["true"], false_values=["false"])
    assert body["summary"]["anomalies_detected"] > 5  # the table holds 5, the views all
    hosts = body["hosts"]
    assert hosts["sources"] == expected_hosts(rows, "id.orig_h")
    assert hosts["destinations"] == expected_hosts(rows, "id.resp_h")
    assert hosts["sources_with_anomalies"] == rows[rows["is_anomaly"]]["id.orig_h"].nunique()
    assert hosts["complete"] is True

    timeline = body["timeline"]
    width = timeline["bin_seconds"]
    assert width == 60
    assert timeline["start"] == pytest.approx(rows["ts"].min())
    assert timeline["end"] == pytest.approx(rows["ts"].max())
    first = math.floor(rows["ts"].min() / width)
    assert timeline["first_bin"] == first * width
    flagged = rows[rows["is_anomaly"]]
    bins = (np.floor(flagged["ts"] / width).astype(int) - first).to_numpy()
    n_bins = math.floor(rows["ts"].max() / width) - first + 1
    for severity in ANOMALY_SEVERITIES:
        expected = np.bincount(bins[(flagged["severity"] == severity).to_numpy()],
                               minlength=n_bins)
        assert timeline["counts"][severity] == expected.tolist(), severity


def test_the_counts_do_not_depend_on_how_the_file_is_chunked(model_dir, tmp_path, zeek_log):
    path = tmp_path / "conn.log"
    path.write_bytes(zeek_log)
    model = load_model(model_dir)
    whole = analyse_file(model, path, 10, overview=True).overview
    pieces = analyse_file(model, path, 10, chunk_rows=97, overview=True).overview
    assert pieces.hosts() == whole.hosts()
    assert pieces.timeline() == whole.timeline()


def test_kdd_input_has_no_hosts_or_timeline_and_no_warning_with_a_kdd_model(client,
                                                                            labeled_upload):
    body = post(client, labeled_upload).get_json()
    assert body["hosts"] is None and body["timeline"] is None
    assert body["summary"]["warnings"] == []


def test_a_zeek_file_scored_by_a_kdd_model_carries_a_warning_with_the_training_command(
        client, zeek_log):
    warnings = post(client, zeek_log).get_json()["summary"]["warnings"]
    assert [w["code"] for w in warnings] == ["input_kind_mismatch"]
    assert "Zeek" in warnings[0]["message"] and "KDD" in warnings[0]["message"]
    assert warnings[0]["command"].startswith("python train_model.py --train conn.log")


def overview_of(*chunks: tuple[list[float], list[str], list[str], list[bool], list[str]]
                ) -> ZeekOverview:
    overview = ZeekOverview()
    for ts, sources, destinations, flagged, severity in chunks:
        identity = pd.DataFrame({"ts": ts, "id.orig_h": sources, "id.resp_h": destinations})
        codes = pd.Categorical(severity, categories=SEVERITIES).codes
        overview.add(identity, np.array(flagged), codes)
    return overview


def test_hosts_rank_by_anomalies_then_highest_severity_then_name():
    overview = overview_of((
        [0.0] * 6,
        ["b", "a", "c", "c", "d", "e"],
        ["x"] * 6,
        [True, True, True, False, True, False],
        ["High", "High", "Critical", "Normal", "Low", "Normal"],
    ))
    hosts = overview.hosts()
    assert [(h["host"], h["anomalies"], h["max_severity"]) for h in hosts["sources"]] == [
        ("c", 1, "Critical"), ("a", 1, "High"), ("b", 1, "High"), ("d", 1, "Low")]
    assert hosts["sources"][0]["connections"] == 2
    assert hosts["sources_with_anomalies"] == 4  # "e" has none, so it is not listed
    assert hosts["destinations"] == [{"host": "x", "anomalies": 4, "connections": 6,
                                      "max_severity": "Critical"}]


def test_hosts_past_the_tracking_cap_are_left_out_and_the_answer_says_so(monkeypatch):
    monkeypatch.setattr(zeek_overview, "MAX_HOSTS_TRACKED", 2)
    overview = overview_of(([0.0] * 3, ["a", "b", "c"], ["x", "x", "x"], [True] * 3,
                            ["Low"] * 3))
    hosts = overview.hosts()
    assert [h["host"] for h in hosts["sources"]] == ["a", "b"]
    assert hosts["complete"] is False


def test_a_long_log_gets_wider_bins_and_the_same_counts_however_it_arrives():
    day = 86400.0
    early = ([0.0, 30.0, 61.0], ["a"] * 3, ["x"] * 3, [True, True, True],
             ["Low", "High", "Low"])
    late = ([2 * day], ["a"], ["x"], [True], ["Critical"])
    narrow_first = overview_of(early, late).timeline()
    at_once = overview_of(tuple(a + b for a, b in zip(early, late, strict=True))).timeline()
    assert narrow_first == at_once
    assert narrow_first["bin_seconds"] == 300  # two days of minutes would be 2,881 bins
    counts = narrow_first["counts"]
    assert len(counts["Low"]) <= zeek_overview.MAX_TIMELINE_BINS
    assert counts["Low"][0] == 2 and counts["High"][0] == 1 and counts["Critical"][-1] == 1
    assert sum(map(sum, counts.values())) == 4


def test_unset_or_absurd_times_stay_out_of_the_timeline():
    timeline = overview_of(([float("nan"), 1e300, 120.0], ["a"] * 3, ["x"] * 3,
                            [True] * 3, ["Low"] * 3)).timeline()
    assert timeline["start"] == timeline["end"] == 120.0
    assert timeline["counts"]["Low"] == [1]


def test_a_log_without_any_time_has_no_timeline():
    assert overview_of(([float("nan")], ["a"], ["x"], [True], ["Low"])).timeline() is None


def test_attack_labels_are_reported_by_the_files_own_names():
    from utils.metrics import evaluate

    labels = pd.Series(["normal", "malicious", "malicious", "cc", "neptune", "normal"])
    flagged = np.array([False, True, False, True, True, True])
    by_label = evaluate(labels, flagged, flagged.astype(float),
                        by_label=True)["detection_rate_by_label"]
    assert list(by_label) == ["malicious", "cc", "neptune"]  # most rows first, then name
    assert by_label["malicious"] == {"category": "Unknown", "total": 2, "detected": 1,
                                     "rate": 0.5}
    assert by_label["neptune"]["category"] == "DoS"
