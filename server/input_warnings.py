"""Warnings a prediction's summary carries: things the numbers alone would hide.

A model judges only the kind of traffic it was trained on. The service keeps one model per
input kind (server/model_holder.py), but a Zeek model exists only once an admin has trained
a baseline of their network; until then Zeek uploads are scored by the KDD model, which
learnt the 1999 KDD simulation and flags nearly every connection of today's network. Without
a word the analyst would take that for a finding, so when the file's kind differs from the
model's, the answer says so and says how to get a model of the file's kind.
"""

from __future__ import annotations

from typing import Any

from utils.model_store import DEFAULT_KIND

INPUT_KIND_MISMATCH = "input_kind_mismatch"

_KIND_NAMES = {"kdd": "KDD Cup 1999 / NSL-KDD records", "zeek": "Zeek conn.log records"}
_SHORT_NAMES = {"kdd": "KDD", "zeek": "Zeek"}
# How to get a model for input of this kind (README, "Your own network"; the admin page).
_ADVICE = {
    "zeek": ("To get one, an admin trains a baseline on a quiet period of your own traffic: "
             'on the admin page, section "Train a baseline for your network", or on the '
             "server with the command below. Once promoted, Zeek files are scored by it."),
    "kdd": "Train a model on KDD records, then serve it for files like this one.",
}
_TRAIN_COMMANDS = {
    "zeek": "python train_model.py --train conn.log",
    "kdd": "python train_model.py --train data/KDDTrain+.txt",
}


def model_kind(model_card: dict[str, Any]) -> str:
    """The input kind a model was trained on (a card without one is a KDD model's)."""
    return str(model_card.get("input_kind") or DEFAULT_KIND)


def input_warnings(model_card: dict[str, Any], input_kind: str) -> list[dict[str, str]]:
    """``[{"code", "message", "command"}]``: empty when the model suits the input.

    The server scores a file with a model of another kind only when it has no model of the
    file's kind (server.model_holder.model_for_input), so the warning says that none exists.
    """
    trained_for = model_kind(model_card)
    if trained_for == input_kind:
        return []
    trained_on = model_card.get("training_data", {}).get("file") if isinstance(
        model_card.get("training_data"), dict) else None
    source = f" ({trained_on})" if trained_on else ""
    short = _SHORT_NAMES.get(input_kind, input_kind)
    message = (
        f"No {short} model exists on this server yet, so this file of "
        f"{_KIND_NAMES.get(input_kind, input_kind)} was scored by the model trained on "
        f"{_KIND_NAMES.get(trained_for, trained_for)}{source}. That model cannot judge this "
        "traffic, so these anomalies and rates say little. "
        + _ADVICE.get(input_kind, _ADVICE["zeek"]))
    return [{"code": INPUT_KIND_MISMATCH, "message": message,
             "command": _TRAIN_COMMANDS.get(input_kind, _TRAIN_COMMANDS["zeek"])}]
