"""Sign-in on the web page, with one password per role set on the frontend server.

Signing in is optional: the upload page and its routes work for everyone as before. Two roles:
an analyst (``ANOMALYZE_ANALYST_PASSWORD``) gets the analyst tools, whose routes are guarded by
``analyst_required``; an admin (``ANOMALYZE_ADMIN_PASSWORD``) gets those too and the baseline
section (``admin_required``). The password given decides the role, so one form serves both.

- The password is compared in constant time with every configured password
  (``hmac.compare_digest`` of SHA-256 digests, so neither its content, its length nor the role
  it matched leaks through timing).
- The session is Flask's signed cookie: HttpOnly, SameSite=Lax, Secure when
  ``ANOMALYZE_SESSION_COOKIE_SECURE`` is set, and it expires after ``ANOMALYZE_SESSION_HOURS``.
  Signing in starts a fresh session (no session fixation). Without ``ANOMALYZE_SESSION_SECRET``
  the signing key is derived from the passwords, so every worker and instance agrees on it and
  a new password signs everyone out.
- Every form and every state-changing request of a signed-in page carries a CSRF token
  (Flask-WTF's CSRFProtect). The anonymous upload routes (``/analyze``, ``/download.csv``) are
  exempt: they read no session, so a forged request gains nothing a direct one would not.
- Failed sign-ins are limited per client address (Flask-Limiter), in memory per worker process
  as the API's admin limit is: with N workers a client gets at most N times the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import TooManyRequests
from wtforms import PasswordField
from wtforms.validators import DataRequired

from api.errors import FrontendError

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

SESSION_KEY = "analyst"  # True for every signed-in user: both roles have the analyst's tools
ROLE_KEY = "role"
ANALYST, ADMIN = "analyst", "admin"
SIGN_IN_ENDPOINT = "auth.sign_in"
# PBKDF2 rounds for the session key derived from the password: done once per process start.
KEY_ROUNDS = 200_000
F = TypeVar("F", bound=Callable[..., Any])


class SignInForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired()])


class SignOutForm(FlaskForm):
    """Only its CSRF token: signing out must not be forceable from another site."""


def _passwords() -> dict[str, str]:
    """The configured password of each role (a role without one cannot sign in)."""
    config = current_app.config
    found = {ANALYST: config.get("ANALYST_PASSWORD"), ADMIN: config.get("ADMIN_PASSWORD")}
    return {role: password for role, password in found.items() if password}


def sign_in_enabled() -> bool:
    return bool(_passwords())


def admin_sign_in_enabled() -> bool:
    return ADMIN in _passwords()


def sign_in_title() -> str:
    """Whose sign-in the link, heading and password field name, by the roles set up."""
    roles = _passwords()
    if ADMIN not in roles:
        return "Analyst"
    return "Analyst or admin" if ANALYST in roles else "Admin"


def analyst_signed_in() -> bool:
    """Any signed-in user whose role can still sign in: an admin may do what an analyst does."""
    return session.get(SESSION_KEY) is True and session.get(ROLE_KEY, ANALYST) in _passwords()


def admin_signed_in() -> bool:
    return analyst_signed_in() and session.get(ROLE_KEY) == ADMIN


def analyst_required(view: F) -> F:
    """For the analyst's XHR routes: 401 JSON unless an analyst is signed in (the CSRF token
    is checked before the view, by CSRFProtect)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not analyst_signed_in():
            raise FrontendError(401, "sign_in_required", "Sign in as an analyst first.")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """For the admin's XHR routes: 401 JSON unless signed in, 403 unless signed in as an
    admin (the CSRF token is checked before the view, by CSRFProtect)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not analyst_signed_in():
            raise FrontendError(401, "sign_in_required", "Sign in as an admin first.")
        if not admin_signed_in():
            raise FrontendError(403, "admin_required", "Only an admin may do this: sign in "
                                "with the admin password.")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def role_for_password(given: str) -> str | None:
    """The role whose password this is, or None. Every configured password is compared, so
    the time taken does not say which one (if any) matched."""
    digest = hashlib.sha256(given.encode()).digest()
    role = None
    for name, expected in _passwords().items():
        if hmac.compare_digest(digest, hashlib.sha256(expected.encode()).digest()):
            role = role or name
    return role


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if not sign_in_enabled():
        abort(404)
    if request.method == "GET" and analyst_signed_in():
        return redirect(url_for("pages.index"), 303)
    form = SignInForm()
    error = None
    status = 200
    if form.validate_on_submit():
        role = role_for_password(form.password.data or "")
        if role is not None:
            session.clear()  # a fresh session, with a fresh CSRF token
            session.permanent = True
            session[SESSION_KEY] = True
            session[ROLE_KEY] = role
            return redirect(url_for("pages.index"), 303)
        error, status = "That password is not right.", 401
    elif request.method == "POST":
        error, status = "Enter the password.", 400
    return _sign_in_page(form, error, status)


@bp.post("/sign-out")
def sign_out():
    SignOutForm()  # CSRFProtect has checked the token before the view runs
    session.clear()
    return redirect(url_for("pages.index"), 303)


def _sign_in_page(form: SignInForm, error: str | None, status: int) -> Response:
    response = make_response(render_template("sign_in.html", form=form, error=error), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def session_secret(config: dict[str, Any]) -> bytes | str:
    """The configured secret, else one derived from the passwords, else a random one (with no
    sign-in nothing is kept in the session)."""
    if config.get("SESSION_SECRET"):
        return config["SESSION_SECRET"]
    analyst, admin = config.get("ANALYST_PASSWORD") or "", config.get("ADMIN_PASSWORD") or ""
    if analyst or admin:
        # Without an admin password: the key derived from the analyst's alone, as before.
        material = f"{analyst}\n{admin}" if admin else analyst
        return hashlib.pbkdf2_hmac("sha256", material.encode(), b"anomalyze-frontend-session",
                                   KEY_ROUNDS)
    return secrets.token_bytes(32)


def check_passwords(config: dict[str, Any]) -> None:
    """One password per role: the same password for both could not tell who signs in."""
    analyst, admin = config.get("ANALYST_PASSWORD"), config.get("ADMIN_PASSWORD")
    if analyst and admin and analyst == admin:
        raise ValueError("ANOMALYZE_ADMIN_PASSWORD must differ from "
                         "ANOMALYZE_ANALYST_PASSWORD: the password decides the role")


def init_app(app: Flask) -> None:
    config = app.config
    check_passwords(config)
    lifetime = timedelta(hours=config["SESSION_HOURS"])
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = session_secret(config)
    config.update(
        SESSION_COOKIE_NAME="anomalyze_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config["SESSION_COOKIE_SECURE"],
        PERMANENT_SESSION_LIFETIME=lifetime,
        WTF_CSRF_TIME_LIMIT=int(lifetime.total_seconds()),
    )
    csrf.init_app(app)
    app.register_blueprint(bp)
    Limiter(
        get_remote_address,
        app=app,
        application_limits=[config["SIGN_IN_LIMIT"]],
        application_limits_exempt_when=lambda: not (
            request.endpoint == SIGN_IN_ENDPOINT and request.method == "POST"),
        application_limits_deduct_when=lambda response: response.status_code == 401,
        storage_uri="memory://",
        strategy="moving-window",
        headers_enabled=True,  # Retry-After on the 429
        key_prefix="anomalyze-sign-in",
    )

    @app.after_request
    def _private_when_signed_in(response: Response) -> Response:
        # A signed-in page holds the session's CSRF token: no cache may keep or share it.
        if session.get(SESSION_KEY) is True:
            response.headers["Cache-Control"] = "private, no-store"
        return response

    @app.context_processor
    def _analyst() -> dict[str, Any]:
        return {"sign_in_enabled": sign_in_enabled(), "sign_in_title": sign_in_title(),
                "analyst": analyst_signed_in(), "admin": admin_signed_in(),
                "sign_out_form": SignOutForm() if analyst_signed_in() else None}

    @app.errorhandler(CSRFError)
    def _csrf_failed(error: CSRFError):
        message = ("The form was out of date or did not come from this page "
                   f"({error.description}). Reload the page and try again.")
        if request.endpoint == SIGN_IN_ENDPOINT:
            return _sign_in_page(SignInForm(formdata=None), message, 400)
        return _json_error(FrontendError(400, "csrf_failed", message))

    @app.errorhandler(TooManyRequests)
    def _too_many(error: TooManyRequests):
        message = "Too many failed sign-ins from this address. Wait a minute and try again."
        if request.endpoint == SIGN_IN_ENDPOINT:
            return _sign_in_page(SignInForm(formdata=None), message, 429)
        return _json_error(FrontendError(429, "too_many_requests", message))


def _json_error(error: FrontendError) -> tuple[Response, int]:
    return jsonify(error.to_dict()), error.status
