"""The model the service scores with, reloaded when the model store's current one changes.

A promotion or rollback replaces the current model atomically (utils.model_store). Each
request asks ``current()`` once at its start and finishes on that model, so a swap never mixes
two models in one answer. Checking for a swap costs one ``ModelStore.stamp()`` (an
``os.stat`` on the local disk) at most every ``check_interval`` seconds; a failed reload keeps
the old model serving and is reported by ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from flask import Flask, current_app

from utils.model_store import MODEL_FILE, LoadedModel, ModelLoadError, ModelStore, open_model_store
from utils.scoring import warm_up

log = logging.getLogger("anomalyze.server")

_NEVER = object()


class ModelUnavailable(RuntimeError):
    """No model has been loaded (missing or unusable model file)."""


def load_warm_model(store: ModelStore) -> LoadedModel:
    """The store's current model, after one scoring run on generated records
    (utils.scoring.warm_up).

    Loaded in the master before the workers fork (gunicorn's preload_app), so no worker's
    first request pays the process's one-time costs; a model that cannot score fails here,
    at load, and is not served.
    """
    model = store.current()
    warm_up(model)
    return model


class ModelHolder:
    """Holds the current model of a store (default: the local folder ``model_dir``) and swaps
    in a new one when the store's current model changes. ``loader`` None loads through the
    store (``load_warm_model``); a loader given is called with ``model_dir``."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        check_interval: float = 1.0,
        loader: Callable[[Path], LoadedModel] | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: ModelStore | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.store = store if store is not None else open_model_store(self.model_dir)
        self.check_interval = check_interval
        self._loader = loader
        self._clock = clock
        self._model: LoadedModel | None = None
        self._error: str | None = None
        self._seen: object = _NEVER  # stamp of the file last tried, loaded or not
        self._checked_at: float | None = None
        self._reload_lock = threading.Lock()

    def current(self) -> LoadedModel:
        """The model to use for one whole request; raises ModelUnavailable if there is none."""
        self.refresh()
        model = self._model
        if model is None:
            raise ModelUnavailable(self._error or "no model loaded")
        return model

    def status(self) -> tuple[LoadedModel | None, str | None]:
        """(model or None, fault with the model on disk or None), after a due check."""
        self.refresh()
        return self._model, self._error

    def refresh(self, *, force: bool = False) -> None:
        """Reload if the model file changed since the last look (at most every check_interval).

        While one thread reloads, the others keep answering with the model they have; only when
        there is no model at all do they wait for the load.
        """
        if not force and not self._due():
            return
        if not self._reload_lock.acquire(blocking=self._model is None or force):
            return
        try:
            if not force and not self._due():
                return  # another thread just checked
            self._checked_at = self._clock()
            stamp = self.store.stamp()
            if stamp == self._seen and not force:
                return
            self._seen = stamp
            self._load(stamp)
        finally:
            self._reload_lock.release()

    def _due(self) -> bool:
        checked = self._checked_at
        return checked is None or self._clock() - checked >= self.check_interval

    def _load(self, stamp: Hashable | None) -> None:
        if stamp is None and self._model is not None:
            self._error = f"{MODEL_FILE} has disappeared from the model folder"
            log.error("model file missing; still serving %s", self._model.version)
            return
        try:
            model = (load_warm_model(self.store) if self._loader is None
                     else self._loader(self.model_dir))
        except ModelLoadError as exc:
            self._fail(str(exc))  # written for people: names the file, never its path
        except Exception as exc:  # a bad file must not take the service down
            log.exception("unexpected error while loading the model")
            self._fail(f"the model could not be loaded ({type(exc).__name__})")
        else:
            previous = self._model
            self._model, self._error = model, None
            if previous is None or previous.version != model.version:
                log.info("serving model %s", model.version)

    def _fail(self, error: str) -> None:
        self._error = error
        if self._model is None:
            log.error("no model loaded: %s", error)
        else:
            log.error("model reload failed, still serving %s: %s", self._model.version, error)


EXTENSION_KEY = "anomalyze.model"


def init_app(app: Flask) -> ModelHolder:
    """Load the model now (the server starts even if that fails) and attach the holder."""
    holder = ModelHolder(app.config["MODEL_DIR"],
                         check_interval=app.config["MODEL_CHECK_INTERVAL"])
    holder.refresh(force=True)
    app.extensions[EXTENSION_KEY] = holder
    return holder


def get_holder() -> ModelHolder:
    return current_app.extensions[EXTENSION_KEY]
