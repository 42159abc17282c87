"""The temporal split of a baseline: fit on its earliest part, choose the threshold on the
next slice, judge it (the promotion gate) on the newest slice.

Splitting by ``ts`` rather than at random is the point: the threshold is then set on later
traffic than the model learned from, so it already allows for the drift from one period to
the next, and the newest slice shows the false-alarm rate to expect on the traffic that
follows. The slices are cut by row count in time order (a quiet weekend does not leave a
slice nearly empty); rows with equal ``ts`` keep their file order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.readers import ParsedRecords
from utils.schema import NORMAL_LABEL
from utils.training import row_categories, validation_mask

# Shares of the baseline's rows, oldest first. Each held-out slice must resolve a 1% false-
# alarm rate: a fifth of a 3,000-row week is 600 rows, six false alarms at 1%. The fit
# keeps the rest, since the number of clusters grows with it (utils.baseline.k_rule).
FIT_FRACTION = 0.6
THRESHOLD_FRACTION = 0.2
NEWEST_FRACTION = 1.0 - FIT_FRACTION - THRESHOLD_FRACTION
SLICE_NAMES = ("fit", "threshold", "newest")


def temporal_slices(ts: np.ndarray | pd.Series) -> dict[str, np.ndarray]:
    """Row positions of each slice (SLICE_NAMES), each in time order."""
    order = np.argsort(np.asarray(ts, dtype=float), kind="stable")
    fit_end = round(len(order) * FIT_FRACTION)
    threshold_end = round(len(order) * (FIT_FRACTION + THRESHOLD_FRACTION))
    return {"fit": order[:fit_end], "threshold": order[fit_end:threshold_end],
            "newest": order[threshold_end:]}


def fit_positions(slices: dict[str, np.ndarray], malicious: np.ndarray) -> np.ndarray:
    """The rows the model is fitted on: the fit slice without rows labeled malicious."""
    return slices["fit"][~malicious[slices["fit"]]]


def malicious_mask(labels: pd.Series | None, rows: int) -> np.ndarray:
    """Rows labeled as anything but normal. Unlabeled rows (no label column, or an unknown
    label such as Stratosphere's Background) count as normal: that is what a baseline of
    one's own traffic claims."""
    if labels is None:
        return np.zeros(rows, dtype=bool)
    known = labels.notna().to_numpy()
    values = labels.to_numpy(dtype=object, copy=True)
    values[~known] = NORMAL_LABEL
    return known & (values != NORMAL_LABEL)


def threshold_slice_rows(ts: np.ndarray | pd.Series, slices_card: dict) -> np.ndarray:
    """Rows of a baseline's own period that its model never fitted and that the newest
    slice does not hold: logged after the fit slice's last row, up to the threshold slice's
    last (the ``slices`` of its model card). Where a threshold may be chosen again; the
    newest slice stays for the figures. ValueError for a card without the slice times."""
    try:
        after = float(slices_card["fit"]["end_ts"])
        until = float(slices_card["threshold"]["end_ts"])
    except (KeyError, TypeError):
        raise ValueError("the model card does not record its slices' times (a baseline "
                         "trained before they were kept); use another labeled file") from None
    ts = np.asarray(ts, dtype=float)
    return (ts > after) & (ts <= until)


def held_out_mask(records: ParsedRecords, card: dict, file_sha256: str) -> np.ndarray:
    """Labeled rows of ``records`` the model of ``card`` never trained on, to choose a
    threshold on: for a baseline's own file its threshold slice (``threshold_slice_rows``),
    for a KDD model's own file its validation split (``utils.training.validation_mask``),
    any other labeled file whole."""
    if card.get("input_kind") != "zeek" or (
            card.get("training_data", {}).get("sha256") != file_sha256):
        return validation_mask(records, card, file_sha256)
    if records.labels is None or records.identity is None:
        raise ValueError("choosing a threshold needs a labeled Zeek conn.log")
    rows = threshold_slice_rows(records.identity["ts"].to_numpy(dtype=float),
                                card.get("baseline", {}).get("slices", {}))
    return rows & (row_categories(records) != "Unlabeled")
