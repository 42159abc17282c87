"""Who is an admin or an analyst: the ``Authorization: Bearer`` token checks.

``$ANOMALYZE_ADMIN_TOKEN``: the admin endpoints (server/retrain.py) and ``POST /api/predict``,
where the same token makes an upload trusted (its labels may teach the model).
``$ANOMALYZE_ANALYST_TOKEN`` (or the admin token): the analyst's routes (server/analyst.py).
Compared in constant time.
"""

from __future__ import annotations

import hmac

from flask import current_app, request

from server.errors import ApiError

ADMIN_TOKEN_ENV = "ANOMALYZE_ADMIN_TOKEN"
ANALYST_TOKEN_ENV = "ANOMALYZE_ANALYST_TOKEN"


def require_admin() -> None:
    """404 ``disabled`` without a configured token, 401 without a bearer token, 403 wrong."""
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        raise ApiError(404, "disabled",
                       f"admin endpoints are disabled: set {ADMIN_TOKEN_ENV} to enable them")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <admin token>")
    if not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise ApiError(403, "forbidden", "wrong admin token")


def request_is_admin() -> bool:
    """Whether the request carries the admin bearer token (then its upload is trusted).

    No ``Authorization: Bearer`` header, or no token configured: an anonymous request. A
    bearer token that is wrong is refused (``require_admin``), not silently downgraded.
    """
    if not current_app.config.get("ADMIN_TOKEN"):
        return False
    scheme, _, _ = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    require_admin()
    return True


def require_analyst() -> str:
    """The caller's role (``analyst`` or ``admin``: an admin may do what an analyst does);
    404 ``disabled`` without any token configured, 401 without a bearer token, 403 wrong."""
    tokens = {role: current_app.config.get(key) for role, key in
              (("analyst", "ANALYST_TOKEN"), ("admin", "ADMIN_TOKEN"))}
    if not any(tokens.values()):
        raise ApiError(404, "disabled", f"analyst endpoints are disabled: set "
                       f"{ANALYST_TOKEN_ENV} to enable them")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <analyst token>")
    role = None
    for name, expected in tokens.items():  # both compared: the time says nothing
        if expected and hmac.compare_digest(given.encode(), str(expected).encode()):
            role = role or name
    if role is None:
        raise ApiError(403, "forbidden", "wrong analyst token")
    return role
