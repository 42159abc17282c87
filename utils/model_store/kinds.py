"""Input kinds and where each kind's models live.

The service keeps one current model per input kind: KDD Cup 1999 / NSL-KDD records score
with a model trained on such records, Zeek conn.logs with a baseline of the analyst's own
network once one exists. The KDD model keeps the folder layout it always had (the model
folder itself, as committed in ``models/``); every other kind gets a subfolder of it named
after the kind, with the same layout (``model.joblib``, ``model_card.json``, ``versions/``).
"""

from __future__ import annotations

from pathlib import Path

KINDS: tuple[str, ...] = ("kdd", "zeek")
DEFAULT_KIND = "kdd"


def check_kind(kind: str) -> str:
    """``kind`` if it is one of KINDS; ValueError naming the known kinds otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown input kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return kind


def kind_model_dir(model_dir: Path | str, kind: str = DEFAULT_KIND) -> Path:
    """The folder holding ``kind``'s current model and versions inside ``model_dir``."""
    model_dir = Path(model_dir)
    return model_dir if check_kind(kind) == DEFAULT_KIND else model_dir / kind
