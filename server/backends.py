"""The shared backends in the API (docs/CONFIG.md, "Several instances").

Opened once when the app is created, from ``ANOMALYZE_DATABASE_URL`` and
``ANOMALYZE_STORE_URL`` (neither set: SQLite and the local disk, as on one machine). With the
object store, each worker process runs one background thread that keeps every input kind's
model folder on that kind's shared current model (``SharedModels.sync``: one small query per
``ANOMALYZE_MODEL_CHECK_INTERVAL``; the kind's model holder then hot-swaps the replaced file as
usual)
and notes whether the database and the store answer, which ``/health`` reports without
waiting on a server that is away.

A backend that does not answer costs no prediction: uploads are scored and answered
``stored: false`` (``registry_unavailable``, ``store_unavailable``), the retrain routes answer
503, and the next request tries again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify

from utils.backend_errors import BackendUnavailable
from utils.backends import Backends, open_backends

log = logging.getLogger("anomalyze.server")

EXTENSION_KEY = "anomalyze.backends"
HEALTH_CHECK_SECONDS = 5.0


class BackendWatch:
    """Per worker process: syncs the model folder and checks the backends in the background."""

    def __init__(self, backends: Backends, interval: float) -> None:
        self.backends = backends
        self.interval = max(interval, 0.2)
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._health: dict[str, Any] | None = None
        self._checked_at = 0.0

    def ensure_running(self) -> None:
        """Start this process's thread (threads do not survive gunicorn's fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="anomalyze-backends", daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                self.sync_model()
                if time.monotonic() - self._checked_at >= HEALTH_CHECK_SECONDS:
                    self.check()
            except Exception:  # the thread is this worker's only way to learn of promotions
                log.exception("backend check failed; trying again in %.1f s", self.interval)
            time.sleep(self.interval)

    def sync_model(self) -> dict[str, str]:
        """Bring every kind's model folder to its pointer; the kinds synced now, by version."""
        if self.backends.models is None:
            return {}
        try:
            synced = self.backends.models.sync(self.backends.model_dir)
        except (BackendUnavailable, OSError, ValueError, RuntimeError) as exc:
            log.warning("model sync skipped: %s: %s", type(exc).__name__, exc)
            return {}
        for kind, version in synced.items():
            log.info("shared %s model %s synced into its model folder", kind, version)
        return synced

    def check(self) -> dict[str, Any]:
        self._health = self.backends.health()
        self._checked_at = time.monotonic()
        return self._health

    def health(self) -> dict[str, Any]:
        """The last check (at most HEALTH_CHECK_SECONDS old while the thread runs)."""
        if self._health is None or (time.monotonic() - self._checked_at
                                    > 3 * HEALTH_CHECK_SECONDS):
            return self.check()
        return self._health


def init_app(app: Flask) -> Backends:
    """Open the backends (schema created or upgraded; the shared model seeded and synced)."""
    backends = open_backends(
        app.config["DATA_DIR"], app.config["MODEL_DIR"],
        database_url=app.config.get("DATABASE_URL"), store_url=app.config.get("STORE_URL"),
        pool_size=app.config.get("DB_POOL_SIZE", 4), sqlite=False)
    watch = BackendWatch(backends, app.config["MODEL_CHECK_INTERVAL"] or 1.0)
    if backends.models is not None:
        try:
            for kind in backends.models.seed(backends.model_dir):
                log.info("the local %s model became the shared current one", kind)
        except (BackendUnavailable, OSError, ValueError) as exc:
            log.error("shared model not seeded: %s: %s", type(exc).__name__, exc)
        watch.sync_model()  # before the model holder loads: an empty folder gets the model
    if backends.shared:
        backends.registry.close()  # gunicorn forks next: each worker opens its own pool
    if backends.shared:
        app.before_request(watch.ensure_running)
    app.extensions[EXTENSION_KEY] = watch
    app.register_error_handler(BackendUnavailable, _unavailable)
    return backends


def get_watch() -> BackendWatch:
    return current_app.extensions[EXTENSION_KEY]


def get_backends() -> Backends:
    return get_watch().backends


def _unavailable(exc: BackendUnavailable) -> tuple[Response, int]:
    log.error("backend unavailable: %s", exc)
    return jsonify({"success": False,
                    "error": "the shared database or object store does not answer right now; "
                             "predictions still work, try this again later",
                    "error_type": getattr(exc, "reason", "backend_unavailable")}), 503
