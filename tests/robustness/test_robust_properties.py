"""Property-based tests (hypothesis) of the parser and of the prediction endpoints: whatever the
bytes, the answer is records or a documented 4xx JSON error, never a 500, never a hang.

Inputs are arbitrary bytes and, more usefully, near-valid KDD files: real-looking lines with a
few fields replaced, dropped or added, odd separators and line ends, a BOM, a header, broken
encodings, gzip (whole or truncated).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.helpers.api_calls import UPLOAD_ERROR_TYPES, make_app, upload
from tests.helpers.disk import leftover_temp_files
from tests.helpers.kdd_data import synthetic_kdd
from utils.readers import (
    MAX_PROBLEMS,
    InputFormatError,
    iter_record_chunks,
    read_records,
)
from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES

pytestmark = pytest.mark.slow  # 200 examples a test

ERROR_TYPES = set().union(*UPLOAD_ERROR_TYPES.values())
# Bounded: 200 examples per test; the deadline is generous (a shared CI machine) and only
# catches pathological slowness, pytest-timeout (pyproject.toml) catches a real hang.
FUZZ = settings(max_examples=200, deadline=timedelta(seconds=10),
                suppress_health_check=[HealthCheck.too_slow])

TEMPLATES = [line.split(",") for line in synthetic_kdd(6, 4, seed=3).decode().splitlines()]
HEADER = [*FEATURE_NAMES, "label", "difficulty"]
WEIRD_FIELDS = [
    "", " ", "nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0", "1e400", "1e308", "1e-400",
    "0x10", "1_000", "+5", ".5", "5.", "1e5", "9" * 40, "=cmd|' /C calc'!A0", "@SUM(1)",
    '"1"', "'a'", "é", "\u2028", "\x00", "\x7f", "\x1b[31m", "\U0001f600", "1,2", "a\tb", "\r",
    "normal.", "?", "tcp", "private", "S0", "never_seen_service", "#fields", "{",
]


@st.composite
def fields(draw):
    return draw(st.one_of(
        st.sampled_from(WEIRD_FIELDS),
        st.sampled_from(["0", "1", "0.5", "255", "10000", "0.00", "3e2"]),
        st.text(max_size=6),
        st.integers(-(10**3), 10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    ))


@st.composite
def kdd_like(draw) -> bytes:
    """A near-valid KDD upload: template lines mutated a little, then encoded oddly."""
    lines = []
    separator = draw(st.sampled_from([",", ",", ",", "\t"]))
    width = draw(st.sampled_from([41, 42, 43]))  # features only, + label, + difficulty
    for _ in range(draw(st.integers(1, 6))):
        row = list(draw(st.sampled_from(TEMPLATES)))
        for _ in range(draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, 1, 2, 3]))):
            where = draw(st.integers(0, len(row) - 1))
            action = draw(st.sampled_from(["replace", "replace", "delete", "insert"]))
            if action == "replace":
                row[where] = draw(fields())
            elif action == "delete" and len(row) > 1:
                del row[where]
            else:
                row.insert(where, draw(fields()))
        row = row[:width]
        odd = draw(st.integers(0, 9)) == 0
        lines.append((draw(st.sampled_from([",", "\t", ";", " "])) if odd else separator).join(row))
    if draw(st.integers(0, 4)) == 0:
        lines.insert(0, separator.join(HEADER[:width]))
    if draw(st.integers(0, 6)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", " ", "\t"])))
    end = draw(st.sampled_from(["\n", "\n", "\r\n", "\r", "\n\n"]))
    text = end.join(lines) + draw(st.sampled_from(["", end]))
    data = text.encode("utf-8")
    if draw(st.integers(0, 5)) == 0:
        data = codecs.BOM_UTF8 + data
    damage = draw(st.sampled_from(
        ["none"] * 10 + ["gzip"] * 2 + ["truncate", "latin1", "bytes", "gzip-truncated"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "latin1":
        data = text.encode("latin-1", errors="replace").replace(b"e", b"\xe9", 1)
    elif damage == "bytes":
        where = draw(st.integers(0, len(data)))
        data = data[:where] + draw(st.binary(min_size=1, max_size=4)) + data[where:]
    elif damage == "gzip":
        data = gzip.compress(data, mtime=0)
    elif damage == "gzip-truncated":
        packed = gzip.compress(data, mtime=0)
        data = packed[: draw(st.integers(2, len(packed) - 1))]
    return data


uploads = st.one_of(st.binary(max_size=2048), kdd_like(), kdd_like())


def parse_outcome(data: bytes):
    """("ok", records) or ("error", error_type, first problem); anything else propagates."""
    try:
        records = read_records(data)
    except InputFormatError as exc:
        assert exc.error_type in ERROR_TYPES, exc.error_type
        assert str(exc) and 1 <= len(exc.problems) <= MAX_PROBLEMS
        return ("error", exc.error_type, exc.problems[0])
    return ("ok", records)


def check_records(records) -> None:
    """What the model relies on: 41 named columns, finite non-negative numbers, non-empty
    categories, one label per row."""
    assert len(records) > 0
    assert list(records.features.columns) == list(FEATURE_NAMES)
    numbers = records.features[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
    for name in CATEGORICAL_FEATURES:
        values = records.features[name]
        assert all(isinstance(v, str) and v for v in values), name
    if records.labels is not None:
        assert len(records.labels) == len(records)


@FUZZ
@given(data=uploads)
def test_parser_returns_valid_records_or_a_documented_error(data):
    outcome = parse_outcome(data)
    if outcome[0] == "ok":
        check_records(outcome[1])


@FUZZ
@given(data=uploads)
def test_chunked_parser_agrees_with_the_whole_file_parser(data):
    """iter_record_chunks (what the API uses) accepts exactly what read_records accepts."""
    whole = parse_outcome(data)
    try:
        chunks = list(iter_record_chunks(data, chunk_rows=2))
    except InputFormatError as exc:
        chunked = ("error", exc.error_type, exc.problems[0])
    else:
        chunked = ("ok", chunks)
    assert whole[0] == chunked[0], (whole, chunked)
    if whole[0] == "error":
        assert chunked[1:] == whole[1:]
        return
    features = pd.concat([c.features for c in chunked[1]])
    pd.testing.assert_frame_equal(features, whole[1].features)
    if whole[1].labels is not None:
        labels = pd.concat([c.labels for c in chunked[1]])
        pd.testing.assert_series_equal(labels, whole[1].labels)


@pytest.fixture(scope="module")
def shared_client(model_dir, tmp_path_factory):
    """One app for every example (hypothesis reruns the test body, not the fixtures)."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    return make_app(model_dir, data_dir).test_client(), data_dir


@FUZZ
@given(data=uploads, name=st.sampled_from(["t.txt", "t.csv", "t.gz", "", "../x;rm -rf ~"]))
def test_predict_answers_records_or_the_parsers_4xx_never_a_500(shared_client, data, name):
    client, data_dir = shared_client
    expected = parse_outcome(data)
    event(f"parser: {expected[0] if expected[0] == 'ok' else expected[1]}")
    response = upload(client, data, name=name)
    assert response.is_json
    body = response.get_json()
    if expected[0] == "ok":
        assert response.status_code == 200, body
        assert body["success"] is True
        assert body["summary"]["total_samples"] == len(expected[1])
        assert body["has_labels"] is expected[1].has_labels
        json.dumps(body, allow_nan=False)  # plain JSON: no NaN or Infinity slipped through
    else:
        status = 413 if expected[1] == "too_large" else 400
        assert response.status_code == status, body
        assert (body["success"], body["error_type"]) == (False, expected[1])
        assert body["problems"][0] == expected[2]
    assert leftover_temp_files(data_dir) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=45) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=6),
    max_leaves=60,
)
json_records = st.lists(
    st.lists(st.one_of(st.sampled_from(["tcp", "http", "SF", "0", "1"]), st.integers(-5, 10**6),
                       st.floats(allow_nan=False), st.text(max_size=4), st.none()),
             min_size=40, max_size=43),
    min_size=1, max_size=5)
json_bodies = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_records.map(lambda r: json.dumps({"records": r}).encode()),
)


@FUZZ
@given(body=json_bodies)
def test_predict_json_answers_records_or_a_4xx_never_a_500(shared_client, body):
    client, _ = shared_client
    response = client.post("/api/predict-json", data=io.BytesIO(body),
                           content_type="application/json")
    assert response.is_json
    payload = response.get_json()
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400), payload
    if response.status_code == 400:
        assert payload["success"] is False and payload["error_type"] in ERROR_TYPES
    else:
        assert payload["summary"]["total_samples"] >= 1
