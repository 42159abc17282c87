"""Limits under the real server (gunicorn.conf.py, two workers) on 127.0.0.1: failed admin
authentications, requests gunicorn refuses itself, JSON nested a thousand deep, form framing."""

from __future__ import annotations

import io
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from server.gunicorn_errors import ERROR_TYPES
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.raw_http import read_http_response
from tests.helpers.servers import Gunicorn

pytestmark = pytest.mark.e2e

TIMEOUT = (5, 60)
TOKEN = "limits-admin-token-0123456789abcdef"
WORKERS = 2
LIMIT, WINDOW = 10, 5  # failed authentications per address per worker, seconds


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory) -> Iterator[Gunicorn]:
    root = tmp_path_factory.mktemp("limits-gunicorn")
    server = Gunicorn(root, {"ANOMALYZE_MODEL_DIR": str(model_dir),
                             "ANOMALYZE_DATA_DIR": str(root / "data"),
                             "ANOMALYZE_ADMIN_TOKEN": TOKEN,
                             "ANOMALYZE_ADMIN_AUTH_LIMIT": f"{LIMIT} per {WINDOW} seconds"},
                      workers=WORKERS)
    try:
        yield server
    finally:
        server.stop()


def raw_request(server: Gunicorn, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body)
        return read_http_response(sock)


def test_a_flood_of_token_guesses_is_cut_to_the_limit_then_429(server):
    """Each request on a new connection, so both workers take guesses."""
    started = time.monotonic()
    statuses = Counter()
    for i in range(200):
        response = requests.post(f"{server.url}/api/retrain", timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer guess-{i}"})
        statuses[response.status_code] += 1
        if response.status_code == 429:
            body = response.json()
            assert (body["success"], body["error_type"]) == (False, "too_many_requests")
            assert int(response.headers["Retry-After"]) <= WINDOW
    elapsed = time.monotonic() - started
    print(f"\n[robustness] 200 token guesses in {elapsed:.2f} s: {dict(statuses)}")
    assert set(statuses) <= {403, 429}
    # Each worker counts its own; on a slow machine the flood may outlast a window.
    windows = 1 + int(elapsed // WINDOW)
    assert LIMIT <= statuses[403] <= WORKERS * LIMIT * windows
    assert statuses[429] >= 200 - WORKERS * LIMIT * windows
    time.sleep(WINDOW + 0.5)
    for _ in range(2 * WORKERS):  # the right token, on every worker, after the window
        response = requests.post(f"{server.url}/api/retrain", timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 202, response.text
    assert requests.get(f"{server.url}/health", timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize(("name", "head", "status"), [
    ("bad Content-Length", b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
     400),
    ("two Content-Lengths", b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello", 400),
    ("Content-Length and chunked", b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("gzip transfer coding", b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 400),
    ("unknown transfer coding", b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: foo\r\n\r\n0\r\n\r\n", 501),
    ("bad request line", b"GARBAGE\r\n\r\n", 400),
    ("header without a colon", b"GET /health HTTP/1.1\r\nHost: x\r\nBadHeader\r\n\r\n", 400),
    ("HTTP/2.0 on HTTP/1", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 400),
    ("request line over 4094 bytes", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414),
    ("more than 100 headers", b"GET /health HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n", 431),
], ids=lambda value: value if isinstance(value, str) else None)
def test_requests_gunicorn_refuses_itself_get_the_json_error_shape(server, name, head, status):
    got, headers, body = raw_request(server, head)
    print(f"\n[robustness] {name}: {got} {headers.get('content-type')} {body[:120]!r}")
    assert got == status, body[:300]
    assert headers["content-type"].startswith("application/json"), body[:300]
    error = json.loads(body)
    assert error["success"] is False and isinstance(error["error"], str) and error["error"]
    assert error["error_type"] == ERROR_TYPES[status] and error["problems"] == []
    assert headers.get("connection") == "close"


def test_a_malformed_chunk_inside_the_body_is_a_400_not_a_500(server):
    """gunicorn raises this one while the app reads the body, so the app answers it."""
    head = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    got, _headers, body = raw_request(server, head)
    print(f"\n[robustness] malformed chunk: {got} {body[:160]!r}")
    assert got == 400, body[:300]
    error = json.loads(body.split(b"\n")[0])
    assert error["error_type"] == "bad_request" and "malformed" in error["error"]


def test_json_nested_a_thousand_deep_is_a_400_from_gunicorn_too(server):
    started = time.perf_counter()
    response = requests.post(f"{server.url}/api/predict-json", timeout=TIMEOUT,
                             data=b'{"records": ' + b"[" * 1000 + b"]" * 1000 + b"}",
                             headers={"Content-Type": "application/json"})
    print(f"\n[robustness] JSON 1,000 deep: {response.status_code} {response.text.strip()} "
          f"in {(time.perf_counter() - started) * 1000:.0f} ms")
    assert response.status_code == 400
    assert response.json()["error_type"] == "invalid_json"


def test_form_limits_name_themselves_under_gunicorn(server):
    files = [("file", ("t.txt", io.BytesIO(synthetic_kdd(40, 10, seed=3))))]
    files += [(f"f{i}", (None, b"x")) for i in range(1199)]
    response = requests.post(f"{server.url}/api/predict", files=files, timeout=TIMEOUT)
    print(f"\n[robustness] 1,200 parts: {response.status_code} {response.text.strip()}")
    assert response.status_code == 413
    assert "more than 100 parts" in response.json()["error"]
    response = requests.post(f"{server.url}/api/predict", timeout=TIMEOUT,
                             files={"comment": (None, b"x" * 600_000),
                                    "file": ("t.txt", synthetic_kdd(40, 10, seed=3))})
    print(f"[robustness] 600 KB text field: {response.status_code} {response.text.strip()}")
    assert response.status_code == 413
    assert "64 KB" in response.json()["error"]
