"""The models the service scores with, one per input kind, each reloaded when its model
store's current one changes.

Each input kind (utils.model_store.kinds) has a holder of its own on its own store: the KDD
model, which the service needs, and a Zeek model, which exists once an admin has trained a
baseline of their network (until then a Zeek upload is scored by the KDD model, with a
warning saying so: server/input_warnings.py). A promotion or rollback replaces a kind's
current model atomically (utils.model_store). Each request picks its model once at its start
and finishes on it, so a swap never mixes two models in one answer. Each holder checks for a
swap with one ``ModelStore.stamp()`` (an ``os.stat`` on the local disk) at most every
``check_interval`` seconds; a failed reload keeps the old model serving and is reported by
``/health``.

Every response, errors included, names the model that answered it in ``X-Model-Version``
(one ``after_request`` hook): the model the request used, else the one being served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from flask import Flask, Response, current_app, g

from server.errors import ApiError
from server.request_log import note_request
from utils.model_store import (
    DEFAULT_KIND,
    KINDS,
    MODEL_FILE,
    LoadedModel,
    ModelLoadError,
    ModelStore,
    check_kind,
    kind_model_dir,
    open_model_store,
)
from utils.scoring import warm_up

log = logging.getLogger("anomalyze.server")

MODEL_VERSION_HEADER = "X-Model-Version"

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
    """Holds the current model of input ``kind`` from a store (default: that kind's folder in
    ``model_dir``, utils.model_store.kinds) and swaps in a new one when the store's current
    model changes. ``loader`` None loads through the store (``load_warm_model``); a loader
    given is called with the kind's folder (``self.model_dir``).

    The KDD model is required: without it the holder reports why. Another kind without a
    model is normal (no baseline trained yet): no model and no error; a file that is there
    but cannot be loaded is an error as for KDD.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        kind: str = DEFAULT_KIND,
        check_interval: float = 1.0,
        loader: Callable[[Path], LoadedModel] | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: ModelStore | None = None,
    ) -> None:
        self.kind = check_kind(kind)
        self.required = kind == DEFAULT_KIND
        # in log lines: the KDD model's read as they always have ("serving model <version>")
        self._name = "model" if self.required else f"{kind} model"
        self.model_dir = kind_model_dir(model_dir, kind)
        self.store = store if store is not None else open_model_store(model_dir, kind=kind)
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
            raise ModelUnavailable(self._error or (
                "no model loaded" if self.required else "none has been trained yet"))
        return model

    def status(self) -> tuple[LoadedModel | None, str | None]:
        """(model or None, fault with the model on disk or None), after a due check."""
        self.refresh()
        return self._model, self._error

    def loaded(self) -> LoadedModel | None:
        """The model being served, without looking for a newer file."""
        return self._model

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
            log.error("%s file missing; still serving %s", self._name, self._model.version)
            return
        if stamp is None and not self.required:
            self._error = None  # no model of this kind yet: nothing to load, nothing wrong
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
                log.info("serving %s %s", self._name, model.version)

    def _fail(self, error: str) -> None:
        self._error = error
        if self._model is None:
            log.error("no %s loaded: %s", self._name, error)
        else:
            log.error("%s reload failed, still serving %s: %s", self._name,
                      self._model.version, error)


EXTENSION_KEY = "anomalyze.model"  # the KDD model's holder
HOLDERS_KEY = "anomalyze.models"  # every kind's holder, by kind


def init_app(app: Flask) -> dict[str, ModelHolder]:
    """Load every kind's model now (the server starts even if that fails), attach the
    holders, and name the model on every response."""
    holders = {kind: ModelHolder(app.config["MODEL_DIR"], kind=kind,
                                 check_interval=app.config["MODEL_CHECK_INTERVAL"])
               for kind in KINDS}
    for holder in holders.values():
        holder.refresh(force=True)
    app.extensions[HOLDERS_KEY] = holders
    app.extensions[EXTENSION_KEY] = holders[DEFAULT_KIND]
    app.after_request(_model_version_header)
    return holders


def get_holder(kind: str = DEFAULT_KIND) -> ModelHolder:
    """The holder of input ``kind``'s model (ValueError for an unknown kind)."""
    return current_app.extensions[HOLDERS_KEY][check_kind(kind)]


def get_holders() -> dict[str, ModelHolder]:
    """Every kind's holder, in KINDS order."""
    return current_app.extensions[HOLDERS_KEY]


def answer_with(model: LoadedModel) -> None:
    """Record that this request's answer comes from ``model`` (its X-Model-Version)."""
    g.anomalyze_model_version = model.version


def current_model(kind: str = DEFAULT_KIND) -> LoadedModel:
    """``kind``'s model for this whole request (a reload meanwhile does not affect it); 503
    if that kind has none."""
    try:
        model = get_holder(kind).current()
    except ModelUnavailable as exc:
        raise ApiError(503, "model_unavailable", _unavailable(kind, str(exc))) from None
    _use(model)
    return model


def model_preferring(holders: dict[str, ModelHolder], input_kind: str) -> LoadedModel:
    """``input_kind``'s model when one is loaded, else the KDD model (ModelUnavailable if
    there is none either): the API's choice per upload and the watcher's per batch."""
    if input_kind != DEFAULT_KIND:
        model = holders[check_kind(input_kind)].status()[0]
        if model is not None:
            return model
    return holders[DEFAULT_KIND].current()


def model_for_input(input_kind: str) -> LoadedModel:
    """The model to score input of ``input_kind`` with (``model_preferring``; 503 if there is
    none). On the KDD model the answer carries the input-kind warning
    (server/input_warnings.py), since that model was not trained on such traffic."""
    try:
        model = model_preferring(get_holders(), input_kind)
    except ModelUnavailable as exc:
        raise ApiError(503, "model_unavailable", _unavailable(DEFAULT_KIND, str(exc))) from None
    _use(model)
    return model


def require_any_model() -> None:
    """503 unless some model is loaded: checked before an upload is read (no model, no point
    receiving it); the upload's kind then picks the model (``model_for_input``)."""
    holders = get_holders()
    if any(holder.status()[0] is not None for holder in holders.values()):
        return
    current_model(DEFAULT_KIND)  # raises the 503 that says why


def _use(model: LoadedModel) -> None:
    answer_with(model)
    note_request(model_version=model.version)


def _unavailable(kind: str, reason: str) -> str:
    if kind == DEFAULT_KIND:
        return f"no model is loaded: {reason}"
    return f"no {kind} model is loaded: {reason}"


def _model_version_header(response: Response) -> Response:
    version = g.get("anomalyze_model_version")
    if version is None:  # the request failed, or never needed the model: the KDD one served
        served = current_app.extensions[EXTENSION_KEY].loaded()
        version = served.version if served is not None else None
    if version is not None:
        response.headers[MODEL_VERSION_HEADER] = version
    return response
