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
from utils.model_store.kinds import DEFAULT_KIND, KINDS, check_kind, kind_model_dir
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
    "CARD_FILE", "DEFAULT_KIND", "ENVELOPE_FORMAT", "KINDS", "MODEL_FILE", "VERSIONS_DIR",
    "FileStamp", "LoadedModel", "LocalModelStore", "ModelLoadError", "ModelStore",
    "archive_model", "card_json", "check_kind", "file_stamp", "kind_model_dir",
    "library_versions", "list_versions", "load_model", "load_model_file", "new_version",
    "open_model_store", "save_model", "utc_now",
]


def open_model_store(model_dir: Path | str, url: str | None = None, *,
                     kind: str = DEFAULT_KIND) -> ModelStore:
    """The model store the settings name for models of input ``kind``: ``url`` None (the
    default) is that kind's folder in ``model_dir`` (utils.model_store.kinds); other backends
    are chosen by the URL's scheme."""
    if url is None or url.startswith("file:"):
        root = model_dir if url is None else url.removeprefix("file://")
        return LocalModelStore(kind_model_dir(root, kind))
    scheme = url.split(":", 1)[0]
    raise ValueError(f"no model store backend for {scheme!r} URLs in this build")
