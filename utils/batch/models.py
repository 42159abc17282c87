"""Which model scores which input kind in a batch job.

The service keeps one current model per input kind (utils.model_store.kinds): the KDD model
in the model folder itself and, once an admin has trained one, the Zeek baseline of the
analyst's network in its ``zeek/`` subfolder. A job given that folder scores KDD records with
the first and Zeek logs with the second, as the API does per upload. A folder that holds a
model of one kind only (``--model models/zeek``, or no baseline yet) scores every input with
it, and the summary warns for the input it was not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.batch.readers import model_card, model_file
from utils.batch.worker import ModelRef, sha256_file
from utils.model_store.kinds import DEFAULT_KIND, KINDS, kind_model_dir


@dataclass(frozen=True)
class JobModels:
    """The job's models by the input kind they were trained on (at least one)."""

    refs: dict[str, ModelRef]
    cards: dict[str, dict]

    def ref_for(self, input_kind: str) -> ModelRef:
        """The model for ``input_kind``: its own, else the KDD model, else the one there is."""
        return self.refs[self.kind_for(input_kind)]

    def kind_for(self, input_kind: str) -> str:
        if input_kind in self.refs:
            return input_kind
        return DEFAULT_KIND if DEFAULT_KIND in self.refs else next(iter(self.refs))

    def as_json(self, input_kinds: set[str]) -> dict[str, Any]:
        """``models`` (each model used: input kind -> version, hash, folder) and ``warnings``
        for input scored by a model of another kind."""
        used = {self.kind_for(kind) for kind in input_kinds} or set(self.refs)
        models = {kind: {"version": self.cards[kind].get("model_version"),
                         "sha256": self.refs[kind].sha256, "folder": self.refs[kind].path}
                  for kind in KINDS if kind in used}
        warnings = [
            {"code": "input_kind_mismatch",
             "message": f"{kind} input was scored by the {self.kind_for(kind)} model: no "
                        f"{kind} model was found in the model folder, so expect many false "
                        "alarms (docs/ZEEK.md: train a baseline of your network)"}
            for kind in sorted(input_kinds) if self.kind_for(kind) != kind]
        return {"models": models, "warnings": warnings}


def job_models(model_dir: Path | str) -> JobModels:
    """The models in ``model_dir``: its own (of the kind its card names) and, when that is the
    KDD model, every other kind's current model in its subfolder. FileNotFoundError if the
    folder holds no model; OSError or ValueError (naming the file) if a card or model file
    there cannot be read."""
    model_dir = Path(model_dir).resolve()
    own = _card(model_dir)
    folders = {str(own.get("input_kind") or DEFAULT_KIND): model_dir}
    if DEFAULT_KIND in folders:
        for kind in KINDS:
            folder = kind_model_dir(model_dir, kind)
            if kind not in folders and model_file(folder).exists():
                folders[kind] = folder
    cards = {kind: own if folder == model_dir else _card(folder, required=True)
             for kind, folder in folders.items()}
    return JobModels(
        refs={kind: ModelRef(str(folder), sha256_file(model_file(folder)))
              for kind, folder in folders.items()},
        cards=cards)


def _card(folder: Path, *, required: bool = False) -> dict:
    """The folder's model card; ValueError naming the file if it is not JSON, or (when
    ``required``: its model file is there) if it is missing."""
    try:
        return model_card(folder)
    except FileNotFoundError:
        if required:
            raise ValueError(f"{folder} holds a model file but no model_card.json") from None
        raise
    except ValueError as exc:
        raise ValueError(f"{folder / 'model_card.json'}: {exc}") from None
