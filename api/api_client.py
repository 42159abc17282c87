"""The frontend's only way to talk to the ML API (docs/API.md), with a timeout on every call.

A sleeping free-tier backend can take a minute to wake, and a streamed upload cannot be
re-sent, so uploads go in two steps: `wake()` polls `GET /health` with exponential back-off
within a bounded wait, then the file is sent exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import requests
from flask import Flask, current_app

from api.errors import FrontendError, from_api_response
from api.multipart import file_body, files_body

# Statuses a proxy in front of a starting server answers with; worth waiting out.
WAKING_STATUSES = frozenset({502, 503, 504})
EXTENSION_KEY = "anomalyze_api"


class ApiClient:
    """A requests.Session bound to one API base URL, its timeouts and its wake-up budget."""

    def __init__(self, base_url: str, *, connect_timeout: float = 5.0,
                 read_timeout: float = 300.0, health_timeout: float = 10.0,
                 wake_timeout: float = 90.0, backoff_initial: float = 1.0,
                 backoff_max: float = 16.0, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.health_timeout = health_timeout
        self.wake_timeout = wake_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock

    # -- health -----------------------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        """One quick `GET /health`: whether the API answers with a loaded model right now."""
        try:
            response = self._health()
        except requests.RequestException:
            return {"awake": False, "status": "unreachable"}
        health = _json(response)
        health = health if isinstance(health, dict) else {}
        return {"awake": response.status_code == 200,
                "status": health.get("status", f"http_{response.status_code}"),
                "model_version": health.get("model_version")}

    def wake(self) -> dict[str, Any]:
        """The API's health once it answers 200, polling with back-off for up to wake_timeout.

        Connection failures, timeouts and proxy statuses (502/503/504 without the API's own
        health body) mean "still waking"; a 503 health body from the API itself means it is up
        but has no model, which waiting will not fix.
        """
        deadline = self._clock() + self.wake_timeout
        delay = self.backoff_initial
        while True:
            try:
                response = self._health()
            except requests.RequestException:
                response = None
            if response is not None:
                health = _json(response)
                if response.status_code == 200:
                    return health if isinstance(health, dict) else {}
                if response.status_code not in WAKING_STATUSES or _is_api_health(health):
                    raise _health_error(response.status_code, health)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise FrontendError(
                    503, "api_unreachable",
                    "The analysis service did not respond within "
                    f"{self.wake_timeout:g} seconds. It may still be starting up; "
                    "please try again in a minute.")
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, self.backoff_max)

    # -- analysis ---------------------------------------------------------------------------

    def predict(self, filename: str, stream: BinaryIO, content_type: str | None,
                limit: int) -> dict[str, Any]:
        """The API's JSON analysis of one uploaded file (sent once, streamed)."""
        response = self._post_file(filename, stream, content_type, {"limit": limit},
                                   stream_response=False)
        payload = _json(response)
        if not isinstance(payload, dict) or payload.get("success") is not True:
            raise FrontendError(502, "bad_gateway",
                                "The analysis service sent a response the page cannot read.")
        return payload

    def predict_csv(self, filename: str, stream: BinaryIO,
                    content_type: str | None) -> requests.Response:
        """The API's open, streaming CSV response; the caller must close it."""
        return self._post_file(filename, stream, content_type, {"format": "csv"},
                               stream_response=True)

    # -- model panel ------------------------------------------------------------------------

    def model_info(self) -> dict[str, Any]:
        return self._get_json("/api/model-info")

    def retrain_status(self) -> dict[str, Any] | None:
        """The retraining status, or None when the API does not offer it (404)."""
        try:
            return self._get_json("/api/retrain/status")
        except FrontendError as error:
            if error.status == 404:
                return None
            raise

    # -- the analyst's tools ------------------------------------------------------------------

    def analyst_call(self, method: str, path: str, token: str,
                     body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON) of an analyst route of the API, sent with its analyst token.
        Error statuses are returned, not raised: the caller forwards what the page needs."""
        return self._token_call(method, path, token, body, {"X-Analyst": "web"})

    # -- the admin's baselines ----------------------------------------------------------------

    def admin_call(self, method: str, path: str, token: str,
                   body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON) of an admin route of the API, sent with its admin token;
        error statuses are returned, not raised."""
        return self._token_call(method, path, token, body, {})

    def admin_upload(self, path: str, token: str, files: list[tuple[str, BinaryIO, str | None]],
                     fields: dict[str, str]) -> tuple[int, Any]:
        """(status, parsed JSON) of a multipart POST of several files (each sent once,
        streamed, under the field name ``files``) and text fields, with the admin token."""
        body = files_body("files", files, fields)
        try:
            response = self.session.post(
                f"{self.base_url}{path}", data=body,
                headers={"Content-Type": body.content_type, "Authorization": f"Bearer {token}"},
                timeout=(self.connect_timeout, self.read_timeout))
        except requests.Timeout as exc:
            raise _timeout_error(self.read_timeout) from exc
        except requests.RequestException as exc:
            raise _unreachable_error() from exc
        return response.status_code, _json(response)

    # -- helpers ----------------------------------------------------------------------------

    def _token_call(self, method: str, path: str, token: str, body: dict[str, Any] | None,
                    headers: dict[str, str]) -> tuple[int, Any]:
        try:
            response = self.session.request(
                method, f"{self.base_url}{path}", json=body,
                headers={"Authorization": f"Bearer {token}", **headers},
                timeout=(self.connect_timeout, self.health_timeout))
        except requests.Timeout as exc:
            raise _timeout_error(self.health_timeout) from exc
        except requests.RequestException as exc:
            raise _unreachable_error() from exc
        return response.status_code, _json(response)

    def _health(self) -> requests.Response:
        return self.session.get(f"{self.base_url}/health",
                                timeout=(self.connect_timeout, self.health_timeout))

    def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = self.session.get(f"{self.base_url}{path}",
                                        timeout=(self.connect_timeout, self.health_timeout))
        except requests.Timeout as exc:
            raise _timeout_error(self.health_timeout) from exc
        except requests.RequestException as exc:
            raise _unreachable_error() from exc
        payload = _json(response)
        if response.status_code != 200:
            raise from_api_response(response.status_code, payload)
        if not isinstance(payload, dict):
            raise FrontendError(502, "bad_gateway",
                                "The analysis service sent a response the page cannot read.")
        return payload

    def _post_file(self, filename: str, stream: BinaryIO, content_type: str | None,
                   params: dict[str, Any], *, stream_response: bool) -> requests.Response:
        body = file_body("file", filename, stream, content_type)
        try:
            response = self.session.post(
                f"{self.base_url}/api/predict", params=params, data=body,
                headers={"Content-Type": body.content_type},
                timeout=(self.connect_timeout, self.read_timeout), stream=stream_response)
        except requests.Timeout as exc:
            raise _timeout_error(self.read_timeout) from exc
        except requests.RequestException as exc:
            raise _unreachable_error() from exc
        if response.status_code != 200:
            try:
                raise from_api_response(response.status_code, _json(response))
            finally:
                response.close()
        return response


def iter_and_close(response: requests.Response, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The body of a streamed response in chunks, closing the connection when done or aborted."""
    try:
        yield from response.iter_content(chunk_size)
    finally:
        response.close()


def init_app(app: Flask) -> None:
    """One client per app, built from its config (tests may pass SLEEP / CLOCK / SESSION)."""
    config = app.config
    app.extensions[EXTENSION_KEY] = ApiClient(
        config["API_URL"],
        connect_timeout=config["API_CONNECT_TIMEOUT"],
        read_timeout=config["API_READ_TIMEOUT"],
        health_timeout=config["API_HEALTH_TIMEOUT"],
        wake_timeout=config["API_WAKE_TIMEOUT"],
        backoff_initial=config["API_BACKOFF_INITIAL"],
        backoff_max=config["API_BACKOFF_MAX"],
        session=config.get("SESSION"),
        sleep=config.get("SLEEP") or time.sleep,
        clock=config.get("CLOCK") or time.monotonic,
    )


def get_client() -> ApiClient:
    return current_app.extensions[EXTENSION_KEY]


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _is_api_health(payload: Any) -> bool:
    """Whether a body came from the API itself rather than a proxy in front of it."""
    return isinstance(payload, dict) and ("models_loaded" in payload or "error_type" in payload)


def _health_error(status: int, health: Any) -> FrontendError:
    if _is_api_health(health) and status == 503:
        detail = health.get("model_error") or health.get("error") or "no model is loaded"
        return FrontendError(503, "model_unavailable",
                             f"The analysis service is running but cannot analyse files yet: "
                             f"{detail}.")
    return from_api_response(status, health)


def _unreachable_error() -> FrontendError:
    return FrontendError(503, "api_unreachable",
                         "The analysis service could not be reached. Please try again in a "
                         "minute.")


def _timeout_error(seconds: float) -> FrontendError:
    return FrontendError(504, "api_timeout",
                         f"The analysis service did not answer within {seconds:g} seconds.")
