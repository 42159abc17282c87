"""Waking a sleeping API: exponential back-off within a bounded wait, and a clear error."""

from __future__ import annotations

import io

import pytest
import requests
import responses

from api.api_client import ApiClient
from api.errors import FrontendError

from .fakes import API_URL, HEALTH_OK, FakeTime


def make_client(fake_time: FakeTime, **kwargs) -> ApiClient:
    options = {"wake_timeout": 30.0, "backoff_initial": 1.0, "backoff_max": 8.0}
    options.update(kwargs)
    return ApiClient(API_URL, sleep=fake_time.sleep, clock=fake_time.monotonic, **options)


def test_wake_returns_at_once_when_the_api_is_up(mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    assert make_client(fake_time).wake()["model_version"] == HEALTH_OK["model_version"]
    assert fake_time.sleeps == []


def test_wake_backs_off_exponentially_until_the_api_answers(mocked_api, fake_time):
    refused = requests.ConnectionError("connection refused")
    for _ in range(4):
        mocked_api.get(f"{API_URL}/health", body=refused)
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    make_client(fake_time).wake()
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert len(mocked_api.calls) == 5


def test_wake_gives_up_after_the_bounded_wait(mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/health", body=requests.ConnectTimeout("timed out"))
    with pytest.raises(FrontendError) as raised:
        make_client(fake_time, wake_timeout=30.0).wake()
    assert raised.value.status == 503
    assert raised.value.error_type == "api_unreachable"
    assert "try again" in raised.value.message
    assert sum(fake_time.sleeps) == pytest.approx(30.0)
    assert max(fake_time.sleeps) <= 8.0


@pytest.mark.parametrize("proxy_status", [502, 503, 504])
def test_wake_waits_out_a_proxy_error_page(mocked_api, fake_time, proxy_status):
    mocked_api.get(f"{API_URL}/health", status=proxy_status, body="<html>waking</html>")
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    make_client(fake_time).wake()
    assert fake_time.sleeps == [1.0]


def test_wake_does_not_wait_when_the_api_says_it_has_no_model(mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/health", status=503,
                   json={**HEALTH_OK, "status": "unavailable", "models_loaded": 0,
                         "model_error": "model file is corrupt"})
    with pytest.raises(FrontendError) as raised:
        make_client(fake_time).wake()
    assert raised.value.error_type == "model_unavailable"
    assert "model file is corrupt" in raised.value.message
    assert fake_time.sleeps == []


def test_every_call_carries_a_timeout(mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    mocked_api.get(f"{API_URL}/api/model-info", json={"success": True})
    mocked_api.get(f"{API_URL}/api/retrain/status", json={"success": True})
    mocked_api.post(f"{API_URL}/api/predict", json={"success": True})
    client = make_client(fake_time, connect_timeout=3.0, read_timeout=77.0)
    client.wake()
    client.probe()
    client.model_info()
    client.retrain_status()
    client.predict("a.txt", io.BytesIO(b"x"), "text/plain", limit=10)
    client.predict_csv("a.txt", io.BytesIO(b"x"), "text/plain").close()
    timeouts = [call.request.req_kwargs["timeout"] for call in mocked_api.calls]
    assert len(timeouts) == 6
    assert all(isinstance(t, tuple) and t[0] == 3.0 and t[1] > 0 for t in timeouts)
    assert timeouts[-1] == (3.0, 77.0)


def test_retrain_status_is_none_when_the_api_lacks_the_route(mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/api/retrain/status", status=404,
                   json={"success": False, "error": "not found", "error_type": "not_found"})
    assert make_client(fake_time).retrain_status() is None


def test_probe_reports_asleep_without_waiting(mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/health", body=requests.ConnectionError("refused"))
    assert make_client(fake_time).probe()["awake"] is False
    assert fake_time.sleeps == []


@responses.activate
def test_base_url_trailing_slash_is_ignored(fake_time):
    responses.get(f"{API_URL}/health", json=HEALTH_OK)
    ApiClient(f"{API_URL}/", sleep=fake_time.sleep, clock=fake_time.monotonic).wake()
    assert responses.calls[0].request.url == f"{API_URL}/health"
