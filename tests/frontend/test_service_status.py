"""GET /service-status: a quick probe, or (wait=1) a bounded wait for a sleeping API."""

from __future__ import annotations

import requests

from .fakes import API_URL, HEALTH_OK


def test_probe_reports_an_awake_api(client, awake_api):
    body = client.get("/service-status").get_json()
    assert body["awake"] is True
    assert body["model_version"] == HEALTH_OK["model_version"]


def test_probe_reports_a_sleeping_api_without_waiting(client, mocked_api, fake_time):
    body = client.get("/service-status").get_json()
    assert body == {"success": True, "awake": False, "status": "unreachable"}
    assert fake_time.sleeps == []


def test_wait_polls_until_the_api_wakes(client, mocked_api, fake_time):
    mocked_api.get(f"{API_URL}/health", body=requests.ConnectionError("refused"))
    mocked_api.get(f"{API_URL}/health", body=requests.ConnectionError("refused"))
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    response = client.get("/service-status?wait=1")
    assert response.status_code == 200
    assert response.get_json()["awake"] is True
    assert fake_time.sleeps == [1.0, 2.0]


def test_wait_gives_up_with_a_message_for_the_page(client, mocked_api):
    response = client.get("/service-status?wait=1")
    assert response.status_code == 503
    body = response.get_json()
    assert body["success"] is False
    assert "try again in a minute" in body["error"]
