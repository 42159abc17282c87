"""POST /api/predict-json: records as lists or objects, the same answer as an uploaded file,
and refusals that name the record index and field."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.api_calls import upload
from tests.helpers.kdd_data import attack_values, kdd_line, normal_values, synthetic_kdd
from utils.schema import FEATURE_NAMES


def as_values(line: str) -> list:
    """A KDD line as JSON values: numbers as numbers, text as text."""
    values = []
    for field in line.split(","):
        try:
            number = float(field)
        except ValueError:
            values.append(field)
        else:
            values.append(int(number) if number.is_integer() else number)
    return values


@pytest.fixture
def lines() -> list[str]:
    return synthetic_kdd(20, 10, seed=4).decode().splitlines()


def test_list_records_get_the_same_answer_as_the_same_file(client, lines):
    records = [as_values(line)[:42] for line in lines]  # 41 features + label
    body = client.post("/api/predict-json", json={"records": records}).get_json()
    data = "\n".join(",".join(line.split(",")[:42]) for line in lines).encode()
    from_file = upload(client, data).get_json()
    assert body["anomalies"] == from_file["anomalies"]
    assert body["metrics"] == from_file["metrics"]
    assert body["has_labels"] is True
    assert body["summary"]["total_samples"] == 30
    for key in ("sha256", "duplicate", "stored"):
        assert key not in body["summary"]


def test_object_records_are_matched_by_field_name(client):
    rng = np.random.default_rng(2)
    records = [dict(zip(FEATURE_NAMES, as_values(kdd_line(values(rng), None)), strict=True))
               for values in (normal_values, attack_values, normal_values)]
    records[1]["label"] = "neptune"
    shuffled = [dict(reversed(record.items())) for record in records]
    body = client.post("/api/predict-json", json={"records": shuffled}).get_json()
    in_order = client.post("/api/predict-json", json={"records": records}).get_json()
    assert body["anomalies"] == in_order["anomalies"]
    assert body["has_labels"] is True
    assert body["metrics"]["labeled_samples"] == 1  # the other two have no label
    assert [a["index"] for a in body["anomalies"]] == [1]
    assert body["anomalies"][0]["label"] == "neptune"


def test_records_without_labels_have_no_metrics(client, lines):
    records = [as_values(line)[:41] for line in lines]
    body = client.post("/api/predict-json?limit=2", json={"records": records}).get_json()
    assert body["has_labels"] is False and body["metrics"] is None
    assert len(body["anomalies"]) == 2


def test_csv_format_works_for_json_records(client, lines):
    records = [as_values(line)[:41] for line in lines]
    response = client.post("/api/predict-json?format=csv", json={"records": records})
    assert response.mimetype == "text/csv"
    assert len(response.get_data(as_text=True).splitlines()) == 31


@pytest.mark.parametrize(("body", "error_type"), [
    ("not json at all", "invalid_json"),
    ('{"rows": []}', "invalid_json"),
    ('{"records": {"a": 1}}', "invalid_json"),
    ('[1, 2]', "invalid_json"),
    ('{"records": []}', "no_records"),
])
def test_malformed_bodies_are_refused(client, body, error_type):
    response = client.post("/api/predict-json", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error_type"] == error_type


def good_record(rng) -> list:
    return as_values(kdd_line(normal_values(rng), None))


@pytest.mark.parametrize(("change", "error_type", "field", "message"), [
    (lambda r: r.__setitem__(4, "abc"), "invalid_value", "src_bytes", "'abc' is not a number"),
    (lambda r: r.__setitem__(4, -5), "invalid_value", "src_bytes", "'-5' must not be negative"),
    (lambda r: r.__setitem__(0, True), "invalid_value", "duration",
     "expected a number or a string, got a boolean"),
    (lambda r: r.__setitem__(2, "a,b"), "invalid_value", "service",
     "must not contain a comma, tab or line break"),
    (lambda r: r.__setitem__(2, "   "), "invalid_value", "service", "empty value"),
    (lambda r: r.__setitem__(5, None), "invalid_value", "dst_bytes", "missing value"),
    (lambda r: r.pop(), "invalid_value", None, "40 values, expected 41 (or 42 with a label)"),
])
def test_bad_values_name_the_record_index_and_field(client, change, error_type, field,
                                                    message):
    rng = np.random.default_rng(0)
    records = [good_record(rng) for _ in range(3)]
    change(records[1])
    response = client.post("/api/predict-json", json={"records": records})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_type"] == error_type
    assert body["problems"][0] == {"record": 1, "field": field, "message": message}
    where = f"record 1, field {field}" if field else "record 1"
    assert body["error"].startswith(f"{where}: ")


def test_object_record_with_an_unknown_or_missing_field_is_refused(client):
    rng = np.random.default_rng(0)
    record = dict(zip(FEATURE_NAMES, good_record(rng), strict=True))
    typo = {**record, "src_byte": 1}
    missing = {k: v for k, v in record.items() if k != "flag"}
    body = client.post("/api/predict-json", json={"records": [record, typo]}).get_json()
    assert body["problems"][0] == {"record": 1, "field": "src_byte", "message": "unknown field"}
    body = client.post("/api/predict-json", json={"records": [missing]}).get_json()
    assert body["problems"][0] == {"record": 0, "field": "flag", "message": "missing value"}


def test_json_body_over_its_own_limit_is_413(model_dir, tmp_path):
    from server import create_app

    app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": tmp_path,
                      "MAX_JSON_MB": 0.01})
    records = [[0, "tcp", "http", "SF"] + [0] * 37] * 300  # about 34 KB
    response = app.test_client().post("/api/predict-json", json={"records": records})
    assert response.status_code == 413
    body = response.get_json()
    assert body["error_type"] == "too_large" and "0.01 MB" in body["error"]
    small = app.test_client().post("/api/predict-json", json={"records": records[:10]})
    assert small.status_code == 200
