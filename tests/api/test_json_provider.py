"""JSON answers through orjson: same JSON as the standard library, and nothing it cannot write."""

import json

import numpy as np
import pytest
from flask import Flask

from server.json_provider import OrjsonProvider


@pytest.fixture
def bare_app():
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.json.sort_keys = False
    return app


def test_response_is_the_same_json_as_the_standard_library_in_the_same_key_order(bare_app):
    body = {"z": 1, "a": [1.5, None, True, "é"], "nested": {"b": 2, "a": [{"x": 0.1}]}}
    with bare_app.app_context():
        response = bare_app.json.response(body)
    assert response.mimetype == "application/json"
    assert response.get_data().endswith(b"\n")
    assert json.loads(response.get_data()) == body
    assert list(json.loads(response.get_data())) == ["z", "a", "nested"]


def test_numpy_values_are_written_as_plain_numbers(bare_app):
    body = {"f": np.float64(0.25), "f32": np.float32(0.5), "i": np.int64(7), "b": np.bool_(True),
            "array": np.array([1, 2])}
    with bare_app.app_context():
        data = json.loads(bare_app.json.response(body).get_data())
        assert json.loads(bare_app.json.dumps(body)) == data
    assert data == {"f": 0.25, "f32": 0.5, "i": 7, "b": True, "array": [1, 2]}


def test_unknown_objects_are_refused_as_by_flask(bare_app):
    with bare_app.app_context(), pytest.raises(TypeError):
        bare_app.json.response({"x": object()})


def test_debug_answers_stay_indented_for_reading(bare_app):
    bare_app.debug = True
    with bare_app.app_context():
        assert b'\n  "a": 1' in bare_app.json.response({"a": 1}).get_data()


def test_api_answers_come_from_the_provider(client):
    response = client.get("/health")
    assert response.is_json and response.get_data().endswith(b"\n")
    assert isinstance(client.application.json, OrjsonProvider)
