"""Warnings a prediction's summary carries: things the numbers alone would hide.

A model judges only the kind of traffic it was trained on. The shipped model learnt the 1999
KDD simulation; scoring a Zeek conn.log of today's network with it flags nearly every
connection, and without a word the analyst would take that for a finding. So when the file's
kind differs from the model's, the answer says so, with the command that trains a baseline.
"""

from __future__ import annotations

from typing import Any

INPUT_KIND_MISMATCH = "input_kind_mismatch"

_KIND_NAMES = {"kdd": "KDD Cup 1999 / NSL-KDD records", "zeek": "Zeek conn.log records"}
_ADVICE = {
    "zeek": "Train a baseline on a period of your own traffic, then serve that model.",
    "kdd": "Train a model on KDD records, then serve it for files like this one.",
}
# The command that trains a model for input of this kind (README, "Your own network").
_TRAIN_COMMANDS = {
    "zeek": "python train_model.py --train conn.log --model-dir models/own-network",
    "kdd": "python train_model.py --train data/KDDTrain+.txt --model-dir models/kdd",
}


def input_warnings(model_card: dict[str, Any], input_kind: str) -> list[dict[str, str]]:
    """``[{"code", "message", "command"}]``: empty when the model suits the input."""
    model_kind = str(model_card.get("input_kind") or "kdd")
    if model_kind == input_kind:
        return []
    trained_on = model_card.get("training_data", {}).get("file") if isinstance(
        model_card.get("training_data"), dict) else None
    source = f" ({trained_on})" if trained_on else ""
    message = (
        f"This model was trained on {_KIND_NAMES.get(model_kind, model_kind)}{source}, but "
        f"this file holds {_KIND_NAMES.get(input_kind, input_kind)}. It cannot judge this "
        "traffic until it is trained on data of the same kind, so these anomalies and rates "
        "say little. " + _ADVICE.get(input_kind, _ADVICE["zeek"]))
    return [{"code": INPUT_KIND_MISMATCH, "message": message,
             "command": _TRAIN_COMMANDS.get(input_kind, _TRAIN_COMMANDS["zeek"])}]
