"""Reading Zeek conn.logs (TSV and JSON) into KDD records, and the refusals with their lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.zeek_logs import tsv_log
from utils import schema
from utils.readers import InputFormatError, read_records, zeek_log
from utils.readers.zeek import IDENTITY_COLUMNS, normalise_zeek_label, read_zeek_records

ZEEK_SAMPLES = Path(__file__).resolve().parents[2] / "shared/data/zeek"
needs_samples = pytest.mark.skipif(
    not ZEEK_SAMPLES.is_dir(), reason=f"Zeek sample logs not found at {ZEEK_SAMPLES}")

FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "tunnel_parents", "label",
          "detailedlabel"]
ROWS = [
    ["12.5", "C1", "10.0.0.1", "40001", "10.0.0.2", "80", "tcp", "http", "1.7", "300", "5000",
     "SF", "(empty)", "Benign", "-"],
    ["10.0", "C2", "10.0.0.1", "40002", "10.0.0.2", "23", "tcp", "-", "-", "-", "-", "S0",
     "(empty)", "Malicious", "C&C"],
    ["11.0", "C3", "10.0.0.3", "8", "10.0.0.2", "0", "icmp", "-", "0.1", "64", "64", "OTH",
     "(empty)", "Background", "(empty)"],
]


def zeek_tsv(rows=ROWS, fields=FIELDS, *, close=True, extra_header="") -> bytes:
    return tsv_log(rows, fields, close=close, opened="2026-11-25-12-00-00",
                   extra_header=extra_header)


def zeek_json(rows=ROWS, fields=FIELDS) -> bytes:
    numeric = {"ts", "id.orig_p", "id.resp_p", "duration", "orig_bytes", "resp_bytes"}
    records = []
    for row in rows:
        record = {}
        for name, value in zip(fields, row, strict=True):
            if value in ("-", "(empty)"):
                continue  # Zeek's JSON writer leaves unset fields out
            record[name] = float(value) if name in numeric else value
        records.append(json.dumps(record))
    return ("\n".join(records) + "\n").encode()


def assert_refused(data: bytes, error_type: str, line: int | None = None,
                   column: str | None = None) -> InputFormatError:
    with pytest.raises(InputFormatError) as caught:
        read_zeek_records(data)
    error = caught.value
    assert error.error_type == error_type, str(error)
    if line is not None:
        assert error.problems[0]["line"] == line, error.problems
    if column is not None:
        assert error.problems[0]["column"] == column, error.problems
    return error


# --- what a record looks like ----------------------------------------------------------------


def test_tsv_log_gives_kdd_features_identity_and_labels_in_file_order():
    records = read_zeek_records(zeek_tsv())
    assert records.input_kind == "zeek"
    assert tuple(records.features.columns) == schema.FEATURE_NAMES
    assert list(records.features.index) == [0, 1, 2]
    assert records.features["service"].tolist() == ["http", "telnet", "eco_i"]
    assert records.features["flag"].tolist() == ["SF", "S0", "SF"]
    assert records.identity["uid"].tolist() == ["C1", "C2", "C3"]
    assert records.labels.iloc[:2].tolist() == ["normal", "c&c"]
    assert records.labels.iloc[2] is pd.NA
    assert records.difficulty is None


def test_unset_and_empty_values_read_as_zero_or_unknown():
    records = read_zeek_records(zeek_tsv())
    second = records.features.loc[1]
    assert (second["duration"], second["src_bytes"], second["dst_bytes"]) == (0, 0, 0)
    assert records.features.loc[0, ["duration", "src_bytes", "dst_bytes"]].tolist() == [1, 300,
                                                                                         5000]


def test_identity_columns_hold_the_connection_tuple_and_zeek_service():
    identity = read_zeek_records(zeek_tsv()).identity
    assert tuple(identity.columns) == IDENTITY_COLUMNS
    assert identity.loc[0].tolist() == ["C1", 12.5, "10.0.0.1", 40001, "10.0.0.2", 80, "http"]
    assert identity.loc[1, "service"] is pd.NA  # "-": unset
    assert identity["id.orig_p"].dtype == np.int64
    assert identity["ts"].dtype == np.float64


def test_window_features_use_time_order_but_rows_stay_in_file_order():
    # in time order: row 1 (10.0), row 2 (11.0), row 0 (12.5), all to 10.0.0.2; row 0's
    # 2-second window [10.5, 12.5] holds row 2 but not row 1, its host window all three
    features = read_zeek_records(zeek_tsv()).features
    assert features["count"].tolist() == [2, 1, 2]
    assert features["dst_host_count"].tolist() == [3, 1, 2]


def test_json_lines_read_like_the_same_tsv():
    from_tsv = read_zeek_records(zeek_tsv())
    from_json = read_zeek_records(zeek_json())
    pd.testing.assert_frame_equal(from_json.features, from_tsv.features)
    pd.testing.assert_frame_equal(from_json.identity, from_tsv.identity)
    pd.testing.assert_series_equal(from_json.labels, from_tsv.labels)


def test_json_read_in_chunks_gives_the_same_records(monkeypatch):
    whole = read_zeek_records(zeek_json())
    monkeypatch.setattr(zeek_log, "_JSON_CHUNK_ROWS", 2)
    chunked = read_zeek_records(zeek_json())
    pd.testing.assert_frame_equal(chunked.features, whole.features)
    pd.testing.assert_frame_equal(chunked.identity, whole.identity)


def test_json_iso8601_timestamps_are_read_as_epoch_seconds():
    line = {"ts": "2026-11-25T12:00:01.5Z", "id.orig_h": "10.0.0.1", "id.orig_p": 1,
            "id.resp_h": "10.0.0.2", "id.resp_p": 80, "proto": "tcp", "conn_state": "SF"}
    records = read_zeek_records(json.dumps(line).encode())
    expected = pd.Timestamp("2026-11-25T12:00:01.5Z").timestamp()
    assert records.identity.loc[0, "ts"] == pytest.approx(expected)


@pytest.mark.parametrize("make", [zeek_tsv, zeek_json])
@pytest.mark.parametrize("pack", [gzip.compress, bytes], ids=["gzip", "plain"])
def test_the_upload_parser_reads_zeek_logs_like_this_reader(make, pack):
    direct = read_zeek_records(make())
    records = read_records(pack(make()))
    assert records.input_kind == "zeek"
    pd.testing.assert_frame_equal(records.features, direct.features)
    pd.testing.assert_frame_equal(records.identity, direct.identity)


def test_log_without_labels_has_no_label_series():
    fields = FIELDS[:12]
    records = read_zeek_records(zeek_tsv([row[:12] for row in ROWS], fields))
    assert records.labels is None


def test_crlf_line_ends_and_missing_close_line_are_accepted():
    data = zeek_tsv(close=False).replace(b"\n", b"\r\n")
    assert read_zeek_records(data).identity["uid"].tolist() == ["C1", "C2", "C3"]


def test_comment_and_blank_lines_between_records_are_skipped():
    data = zeek_tsv(ROWS[:1]) + b"\n" + zeek_tsv(ROWS[1:])  # two logs, concatenated
    records = read_zeek_records(data)
    assert records.identity["uid"].tolist() == ["C1", "C2", "C3"]
    assert list(records.features.index) == [0, 1, 2]


def test_other_separator_from_the_header_is_used():
    data = zeek_tsv().replace(b"\t", b"|").replace(b"#separator \\x09", b"#separator \\x7c")
    assert read_zeek_records(data).identity["uid"].tolist() == ["C1", "C2", "C3"]


# --- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "detail", "expected"), [
    ("Malicious", "C&C", "c&c"),
    ("Malicious", "(empty)", "malicious"),
    ("Malicious", "-", "malicious"),
    ("malicious", None, "malicious"),
    ("Malicious   C&C", None, "c&c"),  # IoT-23 style: detail in the same cell
    ("Malicious   PartOfAHorizontalPortScan", "-", "partofahorizontalportscan"),
    ("Malicious", "CC", "cc"),
    ("Benign", "Google", "normal"),
    ("BENIGN", None, "normal"),
    ("Background", "(empty)", pd.NA),
    ("Background-Established-cmpgw-CVUT", None, pd.NA),
    ("normal", None, "normal"),
    ("normal.", None, "normal"),
    ("Neptune", None, "neptune"),
    ("neptune.", None, "neptune"),
    ("-", None, pd.NA),
    ("", None, pd.NA),
    (None, None, pd.NA),
])
def test_labels_are_normalised(label, detail, expected):
    assert normalise_zeek_label(label, detail) is expected or (
        normalise_zeek_label(label, detail) == expected)


def test_iot23_combined_label_column_is_split():
    fields = [*FIELDS[:12], "tunnel_parents   label   detailed-label"]
    rows = [[*row[:12], f"-   {row[13]}   {row[14]}"] for row in ROWS]
    labels = read_zeek_records(zeek_tsv(rows, fields)).labels
    assert labels.iloc[:2].tolist() == ["normal", "c&c"]
    assert labels.iloc[2] is pd.NA


# --- refusals --------------------------------------------------------------------------------


def test_missing_needed_fields_are_named():
    fields = [name for name in FIELDS if name not in ("conn_state", "id.resp_p")]
    rows = [[value for name, value in zip(FIELDS, row, strict=True) if name in fields]
            for row in ROWS]
    error = assert_refused(zeek_tsv(rows, fields), "invalid_format")
    assert "conn_state" in str(error)
    assert "id.resp_p" in str(error)


def test_missing_fields_in_json_are_named():
    error = assert_refused(b'{"ts": 1.0, "proto": "tcp"}\n', "invalid_format")
    assert "id.orig_h" in str(error)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("ts", "yesterday", "'yesterday' is not a timestamp"),
    ("ts", "-", "missing value"),
    ("id.orig_p", "http", "'http' is not a port number"),
    ("id.resp_p", "70000", "'70000' is not a port number"),
    ("id.resp_p", "-1", "'-1' is not a port number"),
    ("orig_bytes", "lots", "'lots' is not a non-negative number"),
])
def test_bad_values_are_refused_with_their_line_and_column(column, value, message):
    rows = [list(row) for row in ROWS]
    rows[1][FIELDS.index(column)] = value
    error = assert_refused(zeek_tsv(rows), "invalid_value", line=10, column=column)
    assert message in error.problems[0]["message"]
    assert str(error).startswith(f"line 10, column {column}: ")


def test_bad_json_value_names_its_line():
    lines = zeek_json().decode().splitlines()
    record = json.loads(lines[2])
    record["id.resp_p"] = "eighty"
    data = "\n".join([*lines[:2], "", json.dumps(record)]).encode()
    assert_refused(data, "invalid_value", line=4, column="id.resp_p")


def test_invalid_json_line_is_refused_with_its_line():
    lines = zeek_json().decode().splitlines()
    data = "\n".join([lines[0], lines[1][:-5], lines[2]]).encode()
    assert_refused(data, "invalid_json", line=2)


@pytest.mark.parametrize("line", ['[1, 2]', '{"ts": 1}, {"ts": 2}', '{"ts": 1}{"ts": 2}'])
def test_json_line_that_is_not_one_object_is_refused(line):
    lines = zeek_json().decode().splitlines()
    data = "\n".join([lines[0], line, lines[2]]).encode()
    assert_refused(data, "invalid_json", line=2)


def test_wrong_field_count_is_refused_with_its_line():
    rows = [list(row) for row in ROWS]
    rows[2] = rows[2][:-1]
    assert_refused(zeek_tsv(rows), "field_count", line=11)
    rows = [list(row) for row in ROWS]
    rows[0] = [*rows[0], "extra"]
    assert_refused(zeek_tsv(rows), "field_count", line=9)


def test_a_short_line_is_found_even_when_a_long_one_evens_out_the_total():
    rows = [list(row) for row in ROWS]
    rows[0] = rows[0][:-1]
    rows[2] = [*rows[2], "extra"]
    error = assert_refused(zeek_tsv(rows), "field_count", line=9)
    assert [entry["line"] for entry in error.problems] == [9, 11]


def test_multi_character_separator_is_refused():
    data = zeek_tsv().replace(b"#separator \\x09", b"#separator \\x09\\x09")
    assert_refused(data, "invalid_format", line=1)


def test_log_without_fields_header_is_refused():
    data = b"#separator \\x09\n" + b"\t".join(value.encode() for value in ROWS[0]) + b"\n"
    assert_refused(data, "invalid_format")


def test_log_with_header_but_no_records_is_refused():
    assert_refused(zeek_tsv([]), "no_records")


def test_non_utf8_log_is_refused_as_an_encoding_error():
    data = zeek_tsv().replace(b"C2", b"C\xff")
    assert_refused(data, "encoding", line=10)


# --- the real samples ------------------------------------------------------------------------


@needs_samples
def test_stratosphere_scenario_sample_parses_with_its_label_counts():
    data = (ZEEK_SAMPLES / "scenario-malicious.conn.log.labeled").read_bytes()
    records = read_zeek_records(data)
    assert len(records) == 992
    labels = records.labels
    assert labels.isna().sum() == 739  # Background
    assert (labels == "normal").sum() == 9  # Benign
    assert labels.value_counts().drop("normal").to_dict() == {"cc": 244}  # Malicious, "CC"
    assert records.features.notna().all(axis=None)


@needs_samples
def test_ctu_botnet_sample_parses_in_file_order_with_its_label_counts():
    data = (ZEEK_SAMPLES / "ctu-botnet-4.conn.log.labeled").read_bytes()
    records = read_zeek_records(data)
    assert len(records) == 22_913
    assert records.labels.value_counts().to_dict() == {"normal": 19_460, "malicious": 3_453}
    first = data.split(b"\n#types", 1)[1].split(b"\n", 2)[1].split(b"\t")
    assert records.identity.loc[0, "uid"] == first[1].decode()
    third = records.features.loc[2]  # ICMPv6 neighbour solicitation (type 135)
    assert (third["protocol_type"], third["service"], third["flag"]) == ("icmp", "oth_i", "SF")
    assert records.features["count"].min() >= 1
    assert records.features["dst_host_count"].max() <= 255
