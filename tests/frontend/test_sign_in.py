"""Analyst sign-in: optional, one password, a hardened session cookie, CSRF-protected forms,
a limit on failed attempts; the anonymous page keeps working as before."""

from __future__ import annotations

import io
import re

import pytest

from api.app_vercel import create_app
from api.auth import analyst_required

from .fakes import API_URL

PASSWORD = "correct-horse-battery-staple"
TOKEN_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def make_app(**config):
    return create_app({"TESTING": True, "API_URL": API_URL, "WTF_CSRF_ENABLED": True,
                       "ANALYST_PASSWORD": PASSWORD, **config})


@pytest.fixture
def analyst_app():
    app = make_app()

    @app.post("/analyst-only")
    @analyst_required
    def _analyst_only():
        return {"success": True}

    return app


@pytest.fixture
def browser(analyst_app):
    return analyst_app.test_client()


def form_token(client, path: str = "/sign-in") -> str:
    match = TOKEN_FIELD.search(client.get(path).get_data(as_text=True))
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(client, password: str = PASSWORD):
    return client.post("/sign-in", data={"password": password,
                                         "csrf_token": form_token(client)})


def signed_in(client) -> bool:
    return 'data-analyst="true"' in client.get("/").get_data(as_text=True)


def test_without_a_password_configured_there_is_no_sign_in(client):
    page = client.get("/").get_data(as_text=True)
    assert "Analyst sign-in" not in page and 'data-analyst="false"' in page
    assert client.get("/sign-in").status_code == 404
    assert client.post("/sign-in", data={"password": "x" * 20}).status_code in (400, 404)


def test_the_right_password_signs_in_with_a_hardened_session_cookie(browser):
    assert 'href="/sign-in"' in browser.get("/").get_data(as_text=True)
    response = sign_in(browser)
    assert response.status_code == 303 and response.headers["Location"].endswith("/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("anomalyze_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires=" in cookie  # ends after ANOMALYZE_SESSION_HOURS, not with the browser
    index = browser.get("/")
    page = index.get_data(as_text=True)
    assert "Signed in as analyst" in page and META_TOKEN.search(page)
    assert index.headers["Cache-Control"] == "private, no-store"  # it holds the CSRF token


def test_the_cookie_is_secure_when_configured():
    client = make_app(SESSION_COOKIE_SECURE=True).test_client()
    response = sign_in(client)
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_wrong_or_empty_password_is_refused(browser):
    response = sign_in(browser, "not-the-password-at-all")
    assert response.status_code == 401
    assert "not right" in response.get_data(as_text=True)
    assert sign_in(browser, "").status_code == 400
    assert not signed_in(browser)


def test_a_sign_in_without_the_csrf_token_is_refused(browser):
    response = browser.post("/sign-in", data={"password": PASSWORD})
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    assert not signed_in(browser)


def test_sign_out_needs_the_csrf_token_and_ends_the_session(browser):
    sign_in(browser)
    assert browser.post("/sign-out").status_code == 400
    assert signed_in(browser)
    token = META_TOKEN.search(browser.get("/").get_data(as_text=True)).group(1)
    response = browser.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 303
    assert not signed_in(browser)


def test_failed_sign_ins_are_limited_per_address_the_right_password_included(browser):
    for _ in range(5):  # ANOMALYZE_SIGN_IN_LIMIT defaults to 5 per minute
        assert sign_in(browser, "wrong-password-guess").status_code == 401
    response = sign_in(browser)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    assert "Retry-After" in response.headers
    assert not signed_in(browser)


def test_successful_sign_ins_do_not_use_up_the_limit(analyst_app):
    for _ in range(7):  # one address, a new browser each time
        assert sign_in(analyst_app.test_client()).status_code == 303


def test_every_worker_derives_the_same_key_and_a_new_password_signs_everyone_out():
    first = make_app().test_client()
    sign_in(first)
    cookie = first.get_cookie("anomalyze_session").value
    for app, expected in ((make_app(), True),
                          (make_app(ANALYST_PASSWORD="another-long-password"), False)):
        other = app.test_client()
        other.set_cookie("anomalyze_session", cookie)
        assert signed_in(other) is expected


def test_analyst_routes_need_a_session_and_the_csrf_header(browser):
    refused = browser.post("/analyst-only")
    assert refused.status_code in (400, 401)
    sign_in(browser)
    token = META_TOKEN.search(browser.get("/").get_data(as_text=True)).group(1)
    assert browser.post("/analyst-only").status_code == 400  # no token
    answer = browser.post("/analyst-only", headers={"X-CSRFToken": token})
    assert answer.status_code == 200 and answer.get_json() == {"success": True}


def test_anonymous_analyst_route_is_a_json_401(analyst_app):
    app = analyst_app
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # past CSRF, to reach the session check
    response = app.test_client().post("/analyst-only")
    assert response.status_code == 401
    assert response.get_json()["error_type"] == "sign_in_required"


def test_the_upload_routes_need_no_token_or_session(analyst_app, awake_api, prediction):
    awake_api.post(f"{API_URL}/api/predict", json=prediction)
    response = analyst_app.test_client().post(
        "/analyze", data={"file": (io.BytesIO(b"0,tcp,http,SF\n"), "a.txt")},
        content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    assert "Set-Cookie" not in response.headers
