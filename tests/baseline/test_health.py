"""The baseline health report: what a baseline holds, and warnings when it looks
contaminated (scanners, failed connections, labeled attacks) or too thin."""

import json

import pytest

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import FIELDS_UNLABELED, baseline_rows, tsv_log
from utils.baseline.health import (
    HIGH_REJECTED_SHARE,
    REJECTED_STATES,
    SCANNER_DISTINCT_DESTINATIONS,
    TOP_TALKERS,
    contamination_warnings,
    format_report,
    health_report,
    health_summary,
)
from utils.readers import read_records


def report_of(rows, fields=None):
    log = tsv_log(rows) if fields is None else tsv_log(rows, fields)
    return health_report(read_records(log))


def codes(report):
    return [w["code"] for w in report["warnings"]]


@pytest.fixture(scope="module")
def clean():
    return report_of(baseline_rows(3000, hours=48, label=False), FIELDS_UNLABELED)


def test_the_report_has_the_agreed_shape_and_is_json(clean):
    assert set(clean) == {"period", "rows", "hosts", "rejected_share", "rejected_states",
                          "top_talkers", "services", "labels", "warnings"}
    assert set(clean["period"]) == {"start", "end", "seconds"}
    assert set(clean["hosts"]) == {"sources", "destinations"}
    assert list(clean["rejected_states"]) == list(REJECTED_STATES)
    assert all(set(t) == {"host", "destinations", "ports", "connections"}
               for t in clean["top_talkers"])
    assert json.loads(json.dumps(clean)) == clean


def test_a_clean_unlabeled_baseline_has_no_warnings(clean):
    assert clean["rows"] == 3000
    assert clean["hosts"] == {"sources": 20, "destinations": 6}
    assert clean["rejected_share"] == 0.0
    assert clean["labels"] is None
    assert clean["warnings"] == []
    assert clean["period"]["start"].startswith("2025-11-24T16:0")
    assert 47 * 3600 < clean["period"]["seconds"] <= 48 * 3600
    assert {s["service"] for s in clean["services"]} == {"http", "ssl", "dns", "ssh"}
    assert sum(s["connections"] for s in clean["services"]) == 3000
    assert len(clean["top_talkers"]) == TOP_TALKERS
    assert "no warnings" in format_report(clean)


def test_a_scanner_is_the_top_talker_and_is_named_in_a_warning():
    report = report_of(baseline_rows(3000, scanner="10.9.9.9",
                                     scan_targets=SCANNER_DISTINCT_DESTINATIONS + 20))
    top = report["top_talkers"][0]
    assert top["host"] == "10.9.9.9"
    assert top["destinations"] == top["ports"] == SCANNER_DISTINCT_DESTINATIONS + 20
    scanner = next(w for w in report["warnings"] if w["code"] == "possible_scanner")
    assert scanner["hosts"] == ["10.9.9.9"]
    assert "10.9.9.9" in scanner["message"]
    assert "possible_scanner" in [w["code"] for w in contamination_warnings(report)]


def test_a_host_below_the_scanner_threshold_is_not_warned_about():
    report = report_of(baseline_rows(3000, scanner="10.9.9.9",
                                     scan_targets=SCANNER_DISTINCT_DESTINATIONS - 1))
    assert "possible_scanner" not in codes(report)


def test_failed_connections_are_counted_by_state_and_warned_about_when_many():
    report = report_of(baseline_rows(1000, scanner="10.9.9.9", scan_targets=600))
    states = report["rejected_states"]
    assert states["S0"] == states["REJ"] == 300
    tcp_rows = 600 + sum(1 for row in baseline_rows(1000) if row[6] == "tcp")
    assert report["rejected_share"] == pytest.approx(600 / tcp_rows)
    assert report["rejected_share"] >= HIGH_REJECTED_SHARE
    rejected = next(w for w in report["warnings"] if w["code"] == "high_rejected_share")
    assert rejected["hosts"][0] == "10.9.9.9"


def test_labeled_malicious_rows_are_counted_and_warned_about():
    report = report_of(baseline_rows(2000, malicious_share=0.1))
    labels = report["labels"]
    assert labels["malicious"] > 100
    assert labels["normal"] + labels["malicious"] == 2000
    assert labels["unlabeled"] == 0
    warning = next(w for w in report["warnings"] if w["code"] == "labeled_malicious")
    assert warning["hosts"] and all(h.startswith("10.1.0.") for h in warning["hosts"])
    assert f"{labels['malicious']:,}" in warning["message"]


def test_unknown_labels_count_as_unlabeled():
    rows = baseline_rows(500)
    for row in rows[:100]:
        row[-1] = "Background"
    labels = report_of(rows)["labels"]
    assert labels == {"normal": 400, "malicious": 0, "unlabeled": 100}


def test_a_short_or_thin_baseline_is_warned_about():
    short = report_of(baseline_rows(3000, hours=6))
    assert codes(short) == ["short_period"]
    thin = report_of(baseline_rows(40, hours=48))
    assert "too_few_rows" in codes(thin)
    assert "training needs at least" in next(
        w for w in thin["warnings"] if w["code"] == "too_few_rows")["message"]
    assert contamination_warnings(thin) == []


def test_the_summary_keeps_counts_and_codes_only():
    report = report_of(baseline_rows(3000, scanner="10.9.9.9", scan_targets=150))
    summary = health_summary(report)
    assert summary["warnings"] == codes(report)
    assert "top_talkers" not in summary
    assert summary["rows"] == 3150


def test_kdd_records_have_no_health_report():
    with pytest.raises(ValueError, match="Zeek"):
        health_report(read_records(synthetic_kdd(50, 10)))
