"""Model folders for the shared-store tests: distinct bytes per version and a card naming the
version, its input kind and what it learned from (syncing and publishing never unpickle)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from utils.model_store import CARD_FILE, MODEL_FILE, VERSIONS_DIR


def fake_model(folder: Path, version: str, *, uploads: Iterable[str] = (),
               previous: str | None = None, created: str = "2026-01-01T00:00:00Z",
               kind: str | None = None, keep_version: bool = False) -> Path:
    """``folder`` holding model ``version``; ``kind`` None leaves ``input_kind`` out of the
    card (as cards from before kinds); ``keep_version`` also archives it under versions/."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(f"model {kind} {version}".encode() * 1000)
    card = {"model_version": version, "created_at": created,
            "training_data": {"uploads": {"sha256": list(uploads)}}}
    if kind is not None:
        card["input_kind"] = kind
    if previous:
        card["retraining"] = {"previous_version": previous}
    (folder / CARD_FILE).write_text(json.dumps(card))
    if keep_version:
        kept = folder / VERSIONS_DIR / version
        kept.mkdir(parents=True, exist_ok=True)
        (kept / MODEL_FILE).write_bytes((folder / MODEL_FILE).read_bytes())
        (kept / CARD_FILE).write_text(json.dumps(card))
    return folder


def card_version(folder: Path) -> str:
    """The version a model folder's card names."""
    return json.loads((folder / CARD_FILE).read_text())["model_version"]
