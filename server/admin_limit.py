"""A limit on failed admin authentications per client address (Flask-Limiter).

The admin token is long and compared in constant time, but nothing stopped a client from
trying hundreds of guesses a second. Every request that presents credentials (an
``Authorization`` header) is checked against ``ANOMALYZE_ADMIN_AUTH_LIMIT`` (default 10 per
minute), and only those answered 401 or 403 count. Past the limit, every request from that
address that presents credentials gets 429 ``too_many_requests`` until the oldest failure
leaves the window (moving window), the right token included; requests without credentials
(every public route) are never limited. Because it hangs on the header and the status, not on
a list of routes, it covers every route that checks the token.

Counts are kept in memory, per worker process: with N gunicorn workers a client gets at most
N times the limit, since the kernel spreads its connections over the workers. Counting across
workers and servers would need a shared store (Flask-Limiter supports Redis, Memcached,
MongoDB), which a one-machine deployment does not have.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

EXTENSION_KEY = "anomalyze.admin_limit"
AUTH_FAILURES = frozenset({401, 403})


def _no_credentials() -> bool:
    return "Authorization" not in request.headers


def _authentication_failed(response: Response) -> bool:
    return response.status_code in AUTH_FAILURES


def init_app(app: Flask) -> Limiter:
    limiter = Limiter(
        get_remote_address,
        app=app,
        application_limits=[app.config["ADMIN_AUTH_LIMIT"]],
        application_limits_exempt_when=_no_credentials,
        application_limits_deduct_when=_authentication_failed,
        storage_uri="memory://",
        strategy="moving-window",
        headers_enabled=True,  # Retry-After on the 429
        key_prefix="anomalyze-admin-auth",
    )
    app.extensions[EXTENSION_KEY] = limiter
    return limiter
