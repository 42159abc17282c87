"""The admin role: a second password on the same sign-in form. An admin has the analyst's
tools and the baseline section; an analyst or an anonymous visitor has neither the section nor
its routes."""

from __future__ import annotations

import pytest

from api.app_vercel import create_app

from .fakes import API_URL
from .test_sign_in import META_TOKEN, PASSWORD, sign_in, signed_in

ADMIN_PASSWORD = "admin-password-for-the-tests-0123"
SECRET = "a-fixed-session-secret-0123456789"


def make_app(**config):
    return create_app({"TESTING": True, "API_URL": API_URL, "WTF_CSRF_ENABLED": True,
                       "ANALYST_PASSWORD": PASSWORD, "ADMIN_PASSWORD": ADMIN_PASSWORD,
                       **config})


@pytest.fixture
def browser():
    return make_app().test_client()


def test_the_admin_password_signs_in_as_admin(browser):
    page = browser.get("/").get_data(as_text=True)
    assert "Analyst or admin sign-in" in page
    assert "Analyst or admin password" in browser.get("/sign-in").get_data(as_text=True)
    assert sign_in(browser, ADMIN_PASSWORD).status_code == 303
    page = browser.get("/").get_data(as_text=True)
    assert "Signed in as admin" in page
    assert 'data-admin="true"' in page and 'data-analyst="true"' in page  # the tools too
    assert 'href="/admin/baseline">Baselines</a>' in page
    section = browser.get("/admin/baseline")
    assert section.status_code == 200
    assert "Train a baseline for your network" in section.get_data(as_text=True)
    assert section.headers["Cache-Control"] == "private, no-store"


def test_the_analyst_password_gives_no_admin_section(browser):
    sign_in(browser)
    page = browser.get("/").get_data(as_text=True)
    assert "Signed in as analyst" in page and 'data-admin="false"' in page
    assert "Baselines</a>" not in page
    section = browser.get("/admin/baseline")
    assert section.status_code == 403
    assert "signed in as an analyst" in section.get_data(as_text=True)
    token = META_TOKEN.search(page).group(1)
    refused = browser.get("/admin/baseline/jobs", headers={"X-CSRFToken": token})
    assert refused.status_code == 403
    assert refused.get_json()["error_type"] == "admin_required"


def test_anonymous_visitors_get_the_way_in_but_not_the_section(browser, mocked_api):
    section = browser.get("/admin/baseline")
    assert section.status_code == 403
    text = section.get_data(as_text=True)
    assert 'href="/sign-in">Sign in as an admin</a>' in text
    assert 'id="baseline-form"' not in text
    assert browser.get("/admin/baseline/jobs").get_json()["error_type"] == "sign_in_required"
    assert browser.post("/admin/baseline/jobs").status_code == 400  # no CSRF token
    assert browser.post("/admin/baseline/jobs/3/promote").status_code == 400
    assert not mocked_api.calls


def test_without_an_admin_password_the_section_says_how_else_to_train(mocked_api):
    client = create_app({"TESTING": True, "API_URL": API_URL,
                         "ANALYST_PASSWORD": PASSWORD}).test_client()
    page = client.get("/").get_data(as_text=True)
    nav = page.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert "Analyst sign-in" in nav and "admin" not in nav.lower()
    text = client.get("/admin/baseline").get_data(as_text=True)
    assert "ANOMALYZE_ADMIN_PASSWORD" in text and "python train_model.py --train" in text


def test_an_admin_password_alone_is_enough():
    client = create_app({"TESTING": True, "API_URL": API_URL, "WTF_CSRF_ENABLED": True,
                         "ADMIN_PASSWORD": ADMIN_PASSWORD}).test_client()
    assert "Admin sign-in" in client.get("/").get_data(as_text=True)
    assert "Admin password" in client.get("/sign-in").get_data(as_text=True)
    assert sign_in(client, PASSWORD).status_code == 401  # no analyst password is set
    assert sign_in(client, ADMIN_PASSWORD).status_code == 303
    assert client.get("/admin/baseline").status_code == 200


def test_one_password_for_both_roles_is_refused_at_start():
    with pytest.raises(ValueError, match="ANOMALYZE_ADMIN_PASSWORD must differ"):
        make_app(ADMIN_PASSWORD=PASSWORD)


def test_a_new_admin_password_signs_everyone_out():
    first = make_app().test_client()
    sign_in(first, ADMIN_PASSWORD)
    cookie = first.get_cookie("anomalyze_session").value
    for app, expected in ((make_app(), True),
                          (make_app(ADMIN_PASSWORD="another-admin-password-0123"), False)):
        other = app.test_client()
        other.set_cookie("anomalyze_session", cookie)
        assert signed_in(other) is expected


def test_an_admin_session_ends_when_admin_sign_in_is_switched_off():
    """With a fixed session secret the cookie stays valid, but not the role it names."""
    first = make_app(SESSION_SECRET=SECRET).test_client()
    sign_in(first, ADMIN_PASSWORD)
    cookie = first.get_cookie("anomalyze_session").value
    other = create_app({"TESTING": True, "API_URL": API_URL, "ANALYST_PASSWORD": PASSWORD,
                        "SESSION_SECRET": SECRET}).test_client()
    other.set_cookie("anomalyze_session", cookie)
    assert not signed_in(other)
    assert other.get("/admin/baseline").status_code == 403
