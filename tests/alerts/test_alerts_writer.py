"""The ECS alert writer (utils/alerts.py): fields, types, the risk mapping, chunking."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.ecs_fields import CUSTOM_TYPES, ECS_TYPES, alert_problems
from tests.helpers.kdd_data import synthetic_kdd
from utils.alerts import (
    ECS_VERSION,
    RISK_BANDS,
    SEVERITY_NUMBERS,
    community_id,
    ecs_alerts,
    epoch_to_iso,
    network_protocol,
    parse_ip,
    risk_scores,
    to_ndjson,
)
from utils.readers import read_records
from utils.scoring import ScoredRecords, iter_scored_chunks, score_records

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ALERTS.md"
SCORED_AT = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state"]
# Documentation addresses only (RFC 5737, RFC 3849).
ROWS = [
    ["1700000000.123456", "CHhAvVGS1DHFjwGM9", "192.0.2.10", "51234", "198.51.100.7", "80",
     "tcp", "http", "0.5", "300", "4000", "SF"],
    ["1700000001.5", "C2", "192.0.2.11", "53001", "198.51.100.53", "53", "udp", "DNS", "0.01",
     "40", "120", "SF"],
    ["1700000002", "C3", "192.0.2.12", "8", "198.51.100.1", "0", "icmp", "-", "0", "64", "64",
     "OTH"],
    ["1700000003", "C4", "2001:DB8::10", "128", "2001:db8::1", "129", "icmp", "-", "0", "64",
     "64", "OTH"],
    ["1700000004", "-", "not-an-ip", "40000", "198.51.100.9", "4444", "tcp", "ssl,http", "-",
     "-", "-", "S0"],
    ["99999999999999", "C6", "192.0.2.13", "40001", "198.51.100.9", "22", "tcp", "-ssh,ssh",
     "-", "-", "-", "REJ"],
]


def conn_log(rows=ROWS) -> bytes:
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             "#unset_field\t-", "#path\tconn", "#fields\t" + "\t".join(FIELDS),
             "#types\t" + "\t".join("string" for _ in FIELDS)]
    lines += ["\t".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def all_flagged(model, records) -> ScoredRecords:
    """Scores of these records made anomalous: 2x to 40x the threshold, so every severity
    the model has edges for can occur; severity and confidence from the detector itself."""
    detector = model.detector
    scores = detector.threshold_ * np.geomspace(2.0, 40.0, len(records))
    scored = score_records(model, records)
    return replace(scored, anomaly_score=scores, is_anomaly=np.ones(len(records), bool),
                   severity=detector.severity(scores), confidence=detector.confidence(scores))


@pytest.fixture(scope="module")
def zeek_alerts(model):
    records = read_records(conn_log())
    return ecs_alerts(model, records, all_flagged(model, records), scored_at=SCORED_AT)


def test_every_field_of_every_alert_has_its_ecs_type(zeek_alerts, model):
    kdd = read_records(synthetic_kdd(5, 5, seed=3))
    kdd_alerts = ecs_alerts(model, kdd, all_flagged(model, kdd), scored_at=SCORED_AT)
    for alert in zeek_alerts + kdd_alerts:
        assert alert_problems(alert) == [], alert


def test_a_zeek_alert_carries_the_connection_it_is_about(zeek_alerts):
    alert = zeek_alerts[0]
    assert alert["@timestamp"] == "2023-11-14T22:13:20.123456Z"
    assert alert["ecs"] == {"version": ECS_VERSION}
    assert alert["event"]["kind"] == "alert"
    assert alert["event"]["category"] == ["network"]
    assert alert["event"]["created"] == "2026-11-30T12:00:00.000Z"
    assert alert["source"] == {"address": "192.0.2.10", "ip": "192.0.2.10", "port": 51234}
    assert alert["destination"] == {"address": "198.51.100.7", "ip": "198.51.100.7", "port": 80}
    assert alert["network"]["transport"] == "tcp"
    assert alert["network"]["iana_number"] == "6"
    assert alert["network"]["type"] == "ipv4"
    assert alert["network"]["protocol"] == "http"
    assert alert["network"]["community_id"] == community_id(
        "tcp", ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("198.51.100.7"),
        51234, 80)
    assert alert["related"] == {"ip": ["192.0.2.10", "198.51.100.7"]}
    assert alert["zeek"] == {"uid": "CHhAvVGS1DHFjwGM9"}
    assert alert["anomalyze"]["row"] == 0
    assert alert["anomalyze"]["input_kind"] == "zeek"
    assert "tcp 192.0.2.10:51234 -> 198.51.100.7:80" in alert["message"]


def test_protocols_are_named_as_ecs_names_them(zeek_alerts):
    dns, icmp, icmp6 = zeek_alerts[1], zeek_alerts[2], zeek_alerts[3]
    assert dns["network"]["protocol"] == "dns"  # lower-cased
    assert (dns["network"]["transport"], dns["network"]["iana_number"]) == ("udp", "17")
    assert (icmp["network"]["transport"], icmp["network"]["iana_number"]) == ("icmp", "1")
    assert "protocol" not in icmp["network"]  # Zeek's service unset
    # Zeek logs ICMPv6 as icmp: the IPv6 addresses make it ipv6-icmp (IANA 58)
    assert (icmp6["network"]["transport"], icmp6["network"]["iana_number"]) == ("ipv6-icmp",
                                                                                   "58")
    assert icmp6["network"]["type"] == "ipv6"
    assert icmp6["source"]["ip"] == "2001:db8::10"  # canonical form
    assert icmp6["source"]["address"] == "2001:DB8::10"  # as logged
    assert icmp6["network"]["community_id"] == community_id(
        "ipv6-icmp", ipaddress.ip_address("2001:db8::10"), ipaddress.ip_address("2001:db8::1"),
        128, 129)


def test_what_the_log_does_not_say_is_left_out_not_invented(zeek_alerts):
    bad_host = zeek_alerts[4]
    assert bad_host["source"] == {"address": "not-an-ip", "port": 40000}
    assert "community_id" not in bad_host["network"]
    assert "type" not in bad_host["network"]
    assert bad_host["related"] == {"ip": ["198.51.100.9"]}
    assert "zeek" not in bad_host  # uid unset
    assert bad_host["network"]["protocol"] == "ssl"  # the first of Zeek's list


def test_a_time_no_date_field_takes_falls_back_to_the_scoring_time(zeek_alerts):
    far_future = zeek_alerts[5]
    assert far_future["@timestamp"] == far_future["event"]["created"]
    assert far_future["network"]["protocol"] == "ssh"  # "-ssh": an analyzer Zeek removed


def test_kdd_alerts_have_no_flow_fields_and_the_scoring_time(model):
    records = read_records(synthetic_kdd(5, 5, seed=3))
    alerts = ecs_alerts(model, records, all_flagged(model, records), scored_at=SCORED_AT)
    assert [a["anomalyze"]["row"] for a in alerts] == list(range(10))
    for alert in alerts:
        assert alert["@timestamp"] == alert["event"]["created"] == "2026-11-30T12:00:00.000Z"
        assert not {"source", "destination", "related", "zeek"} & alert.keys()
        assert alert["network"] == {"transport": "tcp", "iana_number": "6"}
        assert alert["anomalyze"]["input_kind"] == "kdd"
        assert re.search(r"row \d+ \(tcp (http SF|private S0)\)", alert["message"])


def test_only_flagged_rows_become_alerts_with_the_scores_of_the_batch(model):
    records = read_records(synthetic_kdd(40, 20, seed=5))
    scored = score_records(model, records)
    alerts = ecs_alerts(model, records, scored, scored_at=SCORED_AT)
    flagged = np.flatnonzero(scored.is_anomaly)
    assert [a["anomalyze"]["row"] for a in alerts] == flagged.tolist()
    for alert, row in zip(alerts, flagged, strict=True):
        ours = alert["anomalyze"]
        assert ours["score"] == scored.anomaly_score[row]
        assert ours["confidence"] == scored.confidence[row]
        assert ours["severity"] == scored.severity[row]
        assert ours["votes"] == int(scored.votes[row].sum())
        assert ours["threshold"] == scored.threshold
        assert ours["model_version"] == model.version
        assert alert["event"]["severity"] == SEVERITY_NUMBERS[ours["severity"]]
        assert 1 <= len(ours["top_features"]) <= 3


def test_no_anomaly_no_alert(model):
    records = read_records(synthetic_kdd(5, 0, seed=1))
    scored = score_records(model, records)
    scored = replace(scored, is_anomaly=np.zeros(len(records), bool))
    assert ecs_alerts(model, records, scored) == []
    assert to_ndjson([]) == b""


@pytest.mark.slow
def test_alert_rows_are_positions_in_the_whole_input_whatever_the_chunking(model, tmp_path):
    path = tmp_path / "traffic.txt"
    path.write_bytes(synthetic_kdd(60, 30, seed=9))

    def alerts(chunk_rows: int) -> list[dict]:
        out = []
        for records, scored in iter_scored_chunks(model, path, chunk_rows=chunk_rows,
                                                  threads=1):
            out += ecs_alerts(model, records, scored, scored_at=SCORED_AT)
        return out

    whole, chunked = alerts(1000), alerts(7)
    assert len(whole) > 7
    assert chunked == whole


def test_ndjson_is_one_json_object_per_line_whatever_the_text_holds(model):
    rows = [list(ROWS[0])]
    rows[0][1] = 'C"quote\\back\u2028slash\u00e9'
    records = read_records(conn_log(rows))
    alerts = ecs_alerts(model, records, all_flagged(model, records), scored_at=SCORED_AT)
    body = to_ndjson(alerts + alerts)
    lines = body.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert json.loads(lines[0]) == alerts[0]
    assert json.loads(lines[1])["zeek"]["uid"] == rows[0][1]


# --- event.risk_score ---------------------------------------------------------------------


def severity_by_edges(scores: np.ndarray, threshold: float, edges: np.ndarray) -> np.ndarray:
    """The detector's rule (docs/MODEL.md): Normal up to t, then one level per edge passed."""
    level = np.where(scores > threshold, 1 + np.searchsorted(edges, scores, side="left"), 0)
    return np.array(["Normal", "Low", "Medium", "High", "Critical"], dtype=object)[level]


def assert_monotone_within_bands(scores, severities, threshold, edges):
    risk = risk_scores(scores, severities, threshold, edges)
    assert np.all(np.diff(risk) >= 0)
    assert risk.min() >= 0 and risk.max() < 100
    for name, (low, high) in RISK_BANDS.items():
        band = risk[severities == name]
        if band.size:
            assert band.min() >= low and band.max() <= high, name
    return risk


def test_risk_score_rises_with_the_score_and_stays_in_its_severity_band():
    threshold, edges = 1.0, np.array([2.0, 4.0, 8.0])
    scores = np.geomspace(1.000001, 8000.0, 20_000)
    severities = severity_by_edges(scores, threshold, edges)
    assert set(severities) == set(RISK_BANDS)  # the sweep crosses every band
    risk = assert_monotone_within_bands(scores, severities, threshold, edges)
    assert risk[severities == "Critical"].max() > 99  # far beyond every calibration score
    # within a band, by log-score: halfway between 2 and 4 (2*sqrt 2) is halfway up Medium
    middle = risk_scores(np.array([2 * 2**0.5]), np.array(["Medium"], dtype=object),
                         threshold, edges)
    assert middle[0] == pytest.approx((22 + 47) / 2, abs=0.01)


def test_risk_score_follows_the_models_own_severity(model):
    detector = model.detector
    threshold, edges = detector.threshold_, detector.severity_edges()
    scores = np.geomspace(threshold * 1.000001, edges[-1] * 1000, 5_000)
    assert_monotone_within_bands(scores, detector.severity(scores), threshold, edges)


def test_risk_score_reaches_the_top_of_a_band_at_its_upper_edge(model):
    detector = model.detector
    threshold, edges = detector.threshold_, detector.severity_edges()
    for name, edge in zip(("Low", "Medium", "High"), edges, strict=True):
        risk = risk_scores(np.array([edge]), np.array([name], dtype=object), threshold, edges)
        assert risk[0] == RISK_BANDS[name][1]


def test_risk_score_copes_with_severity_edges_raised_to_the_threshold():
    edges = np.array([2.0, 2.0, 2.0])  # every edge below the threshold, raised to it
    risk = risk_scores(np.array([2.5, 4.0, 1e9]), np.array(["Critical"] * 3, dtype=object),
                       2.0, edges)
    assert np.all(np.diff(risk) > 0) and risk[0] >= 74 and risk[-1] < 100


# --- helpers ------------------------------------------------------------------------------


def test_epoch_seconds_become_iso_8601_utc_with_microseconds():
    times = epoch_to_iso(np.array([0.0, 1700000000.5, -1.0, np.nan, 1e15, 253402300799.0]))
    assert times == ["1970-01-01T00:00:00.000000Z", "2023-11-14T22:13:20.500000Z", None, None,
                     None, "9999-12-31T23:59:59.000000Z"]


@pytest.mark.parametrize(("service", "protocol"), [
    ("http", "http"), ("SSL,HTTP", "ssl"), ("-http,dns", "dns"), ("-http", None), ("", None),
    (None, None),
])
def test_network_protocol_is_zeeks_first_confirmed_service(service, protocol):
    assert network_protocol(service) == protocol


@pytest.mark.parametrize(("text", "canonical"), [
    ("192.0.2.1", "192.0.2.1"), (" 2001:DB8:0::1 ", "2001:db8::1"), ("fe80::1%eth0", None),
    ("example.com", None), ("", None), (None, None), ("999.0.0.1", None),
])
def test_only_addresses_an_ip_field_takes_are_parsed(text, canonical):
    parsed = parse_ip(text)
    assert (str(parsed) if parsed is not None else None) == canonical


# --- the documentation --------------------------------------------------------------------


def documented_types() -> dict[str, str]:
    rows = re.findall(r"^\| `([^`]+)` \| `?([a-z_]+)`? \|", DOCS.read_text(), flags=re.M)
    return dict(rows)


def test_docs_list_every_field_with_the_type_the_tests_check():
    assert documented_types() == {**ECS_TYPES, **CUSTOM_TYPES}


def test_the_docs_example_is_a_valid_alert():
    text = DOCS.read_text()
    example = re.search(r"```json\n(\{.*?\})\n```", text, flags=re.S)
    assert example, "docs/ALERTS.md has no ```json example"
    alert = json.loads(example.group(1))
    assert alert_problems(alert) == []
    assert alert["ecs"]["version"] == ECS_VERSION


@pytest.mark.slow
def test_a_zeek_log_read_in_chunks_gives_the_alerts_of_a_whole_read_with_service(model,
                                                                                  tmp_path):
    from tests.helpers.zeek_logs import conn_rows, tsv_log

    path = tmp_path / "conn.log"
    path.write_bytes(tsv_log(conn_rows(1_500, seed=3)))

    def alerts(chunk_rows: int) -> list[dict]:
        out = []
        for records, _scored in iter_scored_chunks(model, path, chunk_rows=chunk_rows,
                                                  threads=1):
            out += ecs_alerts(model, records, all_flagged(model, records),
                              scored_at=SCORED_AT)
        return sorted(out, key=lambda alert: alert["anomalyze"]["row"])

    whole, chunked = alerts(100_000), alerts(200)
    assert len(whole) == 1_500

    # all_flagged scores by position within a batch, which the chunking changes: compare
    # the connection each alert describes, not its score
    def about(alert: dict) -> tuple:
        return (alert["anomalyze"]["row"], alert["@timestamp"], alert["source"],
                alert["destination"], alert["network"], alert.get("zeek"))

    assert [about(a) for a in chunked] == [about(a) for a in whole]
    assert any(a["network"].get("protocol") for a in chunked)  # Zeek's service came through
