"""The signed-in analyst's allow-list and feedback routes: forwarded to the API with the
server's analyst token (never the browser's), behind the session and the CSRF token."""

from __future__ import annotations

import json

import pytest
import responses

from .fakes import API_URL
from .test_sign_in import META_TOKEN, make_app, sign_in

API_TOKEN = "api-analyst-token"


@pytest.fixture
def browser():
    return make_app(API_ANALYST_TOKEN=API_TOKEN).test_client()


def csrf(client) -> dict[str, str]:
    return {"X-CSRFToken": META_TOKEN.search(client.get("/").get_data(as_text=True)).group(1)}


def test_the_routes_need_a_signed_in_analyst(browser, mocked_api):
    assert browser.get("/analyst/allowlist").status_code == 401
    # a POST without the CSRF token is refused before the view (and before any API call)
    assert browser.post("/analyst/feedback", json={}).status_code == 400
    assert not mocked_api.calls


def test_an_entry_is_added_with_the_servers_token(browser, mocked_api):
    mocked_api.add(responses.POST, f"{API_URL}/api/allowlist", status=201,
                   json={"success": True, "entry": {"id": 4, "host": "10.0.0.9"}})
    sign_in(browser)
    response = browser.post("/analyst/allowlist", headers=csrf(browser),
                            json={"host": "10.0.0.9", "reason": "scanner"})
    assert response.status_code == 201 and response.get_json()["entry"]["id"] == 4
    sent = mocked_api.calls[-1].request
    assert sent.headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert json.loads(sent.body) == {"host": "10.0.0.9", "reason": "scanner"}


def test_a_refusal_reaches_the_page_with_its_field_and_existing_id(browser, mocked_api):
    mocked_api.add(responses.POST, f"{API_URL}/api/allowlist", status=409, json={
        "success": False, "error": "an equal allow-list entry exists (id 2)",
        "error_type": "duplicate_entry", "problems": [{"field": "entry", "existing_id": 2}]})
    mocked_api.add(responses.POST, f"{API_URL}/api/feedback", status=400, json={
        "success": False, "error": "bad", "error_type": "invalid_feedback",
        "problems": [{"field": "records[0]", "message": "no such row"}]})
    sign_in(browser)
    duplicate = browser.post("/analyst/allowlist", headers=csrf(browser), json={"port": 53})
    assert duplicate.status_code == 409 and duplicate.get_json()["existing_id"] == 2
    bad = browser.post("/analyst/feedback", headers=csrf(browser), json={"records": [99]})
    assert bad.status_code == 400 and bad.get_json()["field"] == "records[0]"


def test_a_token_the_api_refuses_is_not_shown_as_a_sign_in_problem(browser, mocked_api):
    mocked_api.add(responses.GET, f"{API_URL}/api/allowlist", status=403,
                   json={"success": False, "error": "wrong", "error_type": "forbidden"})
    sign_in(browser)
    response = browser.get("/analyst/allowlist")
    assert response.status_code == 502
    assert response.get_json()["error_type"] == "analyst_token_refused"


def test_without_the_api_token_configured_the_tools_say_so(mocked_api):
    client = make_app().test_client()
    sign_in(client)
    response = client.get("/analyst/allowlist")
    assert response.status_code == 503
    assert response.get_json()["error_type"] == "analyst_tools_disabled"
