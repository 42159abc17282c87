"""The model store on the local disk: ``<model_dir>/model.joblib`` is the current model,
``<model_dir>/versions/<version>/`` every version kept for rollback.

Every write goes through utils.durable_files.atomic_write (temp file, fsync, rename) and a
version folder is filled under a temp name and renamed into place, so a crash never leaves a
half-written model where the server or a rollback would read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from sklearn.pipeline import Pipeline

from utils.durable_files import atomic_write_bytes
from utils.model_store.envelope import card_json, check_versions, dump_envelope, load_model_file
from utils.model_store.interface import LoadedModel, ModelLoadError

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
VERSIONS_DIR = "versions"

FileStamp = tuple[int, int, int] | None  # (st_ino, st_mtime_ns, st_size); None: no file

_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


def file_stamp(path: Path | str) -> FileStamp:
    """What changes when a file is replaced (a rename gives a new inode), for one ``stat``."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def save_model(pipeline: Pipeline, card: dict, model_dir: Path, *, archive: bool = False) -> Path:
    """Make ``pipeline`` the current model in ``model_dir`` (atomically).

    With ``archive`` the same files are also kept under ``versions/<version>/`` for rollback.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if archive:
        archive_model(pipeline, card, model_dir)
    dump_envelope(pipeline, card, model_dir / MODEL_FILE)
    atomic_write_bytes(model_dir / CARD_FILE, card_json(card))
    return model_dir / MODEL_FILE


def archive_model(pipeline: Pipeline, card: dict, model_dir: Path) -> Path:
    """Write ``versions/<version>/`` via a temp folder renamed into place (kept once)."""
    target = Path(model_dir) / VERSIONS_DIR / str(card["model_version"])
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
    try:
        dump_envelope(pipeline, card, tmp / MODEL_FILE)
        atomic_write_bytes(tmp / CARD_FILE, card_json(card))
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_model(model_dir: Path | str) -> LoadedModel:
    """Load the current model of ``model_dir``; raise ModelLoadError with advice if unusable."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"no model file {MODEL_FILE} in the model folder; run `make train`")
    card_path = model_dir / CARD_FILE
    if card_path.is_file():
        # the envelope's own card is checked below; an unreadable JSON copy is informational
        with contextlib.suppress(ValueError, KeyError, TypeError):
            check_versions(json.loads(card_path.read_text()))
    return load_model_file(path)


def list_versions(model_dir: Path | str) -> list[dict[str, str]]:
    """Kept versions (``versions/<version>/``), oldest first by their creation time."""
    found = []
    folder = Path(model_dir) / VERSIONS_DIR
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") or not (entry / MODEL_FILE).is_file():
                continue
            created = ""
            with contextlib.suppress(OSError, ValueError):
                created = json.loads((entry / CARD_FILE).read_text()).get("created_at", "")
            found.append({"version": entry.name, "created_at": created})
    return sorted(found, key=lambda v: (v["created_at"], v["version"]))


class LocalModelStore:
    """utils.model_store.interface.ModelStore on one folder of the local disk."""

    def __init__(self, model_dir: Path | str) -> None:
        self.model_dir = Path(model_dir)

    def current(self) -> LoadedModel:
        return load_model(self.model_dir)

    def stamp(self) -> FileStamp:
        return file_stamp(self.model_dir / MODEL_FILE)

    def keep(self, pipeline: Pipeline, card: dict) -> str:
        archive_model(pipeline, card, self.model_dir)
        return str(card["model_version"])

    def promote(self, version: str) -> LoadedModel:
        chosen = self.load_version(version)
        current: LoadedModel | None = None
        with contextlib.suppress(ModelLoadError):
            current = self.current()
        if current is not None:
            archive_model(current.pipeline, current.card, self.model_dir)
        path = save_model(chosen.pipeline, chosen.card, self.model_dir)
        return LoadedModel(pipeline=chosen.pipeline, card=chosen.card, path=path)

    def load_version(self, version: str) -> LoadedModel:
        path = self.model_dir / VERSIONS_DIR / str(version) / MODEL_FILE
        if not _VERSION_NAME.fullmatch(str(version)) or not path.is_file():
            raise ModelLoadError(f"no kept model version {version!r}")
        return load_model_file(path)

    def versions(self) -> list[dict[str, str]]:
        return list_versions(self.model_dir)
