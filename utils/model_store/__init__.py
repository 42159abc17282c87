"""Model versions and the current model: the store interface, its local-disk backend, and
the joblib envelope every backend reads and writes."""

from __future__ import annotations

from pathlib import Path

from utils.model_store.envelope import (
    ENVELOPE_FORMAT,
    card_json,
    library_versions,
    load_model_file,
    new_version,
    utc_now,
)
from utils.model_store.interface import LoadedModel, ModelLoadError, ModelStore
from utils.model_store.local import (
    CARD_FILE,
    MODEL_FILE,
    VERSIONS_DIR,
    FileStamp,
    LocalModelStore,
    archive_model,
    file_stamp,
    list_versions,
    load_model,
    save_model,
)

__all__ = [
    "CARD_FILE", "ENVELOPE_FORMAT", "MODEL_FILE", "VERSIONS_DIR", "FileStamp", "LoadedModel",
    "LocalModelStore", "ModelLoadError", "ModelStore", "archive_model", "card_json",
    "file_stamp", "library_versions", "list_versions", "load_model", "load_model_file",
    "new_version", "open_model_store", "save_model", "utc_now",
]


def open_model_store(model_dir: Path | str, url: str | None = None) -> ModelStore:
    """The model store the settings name: ``url`` None (the default) is the local folder
    ``model_dir``; other backends are chosen by the URL's scheme."""
    if url is None or url.startswith("file:"):
        return LocalModelStore(model_dir if url is None else url.removeprefix("file://"))
    scheme = url.split(":", 1)[0]
    raise ValueError(f"no model store backend for {scheme!r} URLs in this build")
