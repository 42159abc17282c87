"""The HTML pages (upload + dashboard, input format) and the frontend's own health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from contract.record_layout import (
    CATEGORICAL_FEATURES,
    DIFFICULTY_COLUMN,
    FEATURE_NAMES,
    LABEL_COLUMN,
    SEVERITIES,
)

bp = Blueprint("pages", __name__)

# An invented record (a short SMTP session), written for the format page, in FEATURE_NAMES order.
EXAMPLE_RECORD: tuple[str, ...] = (
    "2", "tcp", "smtp", "SF", "1532", "327", "0", "0", "0", "0", "0", "1", "0", "0", "0", "0",
    "0", "0", "0", "0", "0", "0", "3", "4", "0.00", "0.00", "0.00", "0.00", "1.00", "0.00",
    "0.25", "118", "73", "0.62", "0.03", "0.01", "0.00", "0.00", "0.00", "0.00", "0.00",
)
EXAMPLE_LABEL = "normal"
EXAMPLE_DIFFICULTY = "18"


@bp.get("/")
def index():
    return render_template("index.html", max_upload_mb=current_app.config["MAX_UPLOAD_MB"],
                           severities=SEVERITIES)


@bp.get("/format")
def input_format():
    columns = [
        {"position": position, "name": name, "example": value,
         "kind": "text" if name in CATEGORICAL_FEATURES else "number"}
        for position, (name, value) in enumerate(zip(FEATURE_NAMES, EXAMPLE_RECORD,
                                                     strict=True), start=1)
    ]
    example_line = ",".join(EXAMPLE_RECORD)
    return render_template(
        "format.html", columns=columns, example_line=example_line,
        labelled_line=f"{example_line},{EXAMPLE_LABEL},{EXAMPLE_DIFFICULTY}",
        label_column=LABEL_COLUMN, difficulty_column=DIFFICULTY_COLUMN,
        n_features=len(FEATURE_NAMES), max_upload_mb=current_app.config["MAX_UPLOAD_MB"])


@bp.get("/health")
def health():
    """Liveness of the frontend itself; says nothing about the ML API (see /service-status)."""
    return jsonify({"status": "ok", "service": "anomalyze-frontend"})
