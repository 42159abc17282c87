"""Frontend settings read from environment variables, with the defaults documented in
docs/FRONTEND.md.

Parsed once at start-up so that a mistyped value fails loudly with the variable's name
instead of surfacing later as a confusing timeout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# app.config key -> (environment variable, default). Durations are seconds.
ENV_SETTINGS: dict[str, tuple[str, Any]] = {
    "API_URL": ("ANOMALYZE_API_URL", "http://127.0.0.1:5000"),
    "API_CONNECT_TIMEOUT": ("ANOMALYZE_API_CONNECT_TIMEOUT", 5.0),
    "API_READ_TIMEOUT": ("ANOMALYZE_API_READ_TIMEOUT", 300.0),
    "API_HEALTH_TIMEOUT": ("ANOMALYZE_API_HEALTH_TIMEOUT", 10.0),
    "API_WAKE_TIMEOUT": ("ANOMALYZE_API_WAKE_TIMEOUT", 90.0),
    "API_BACKOFF_INITIAL": ("ANOMALYZE_API_BACKOFF_INITIAL", 1.0),
    "API_BACKOFF_MAX": ("ANOMALYZE_API_BACKOFF_MAX", 16.0),
    "MAX_UPLOAD_MB": ("ANOMALYZE_MAX_UPLOAD_MB", 200.0),
    "TABLE_LIMIT": ("ANOMALYZE_TABLE_LIMIT", 5000),
    "PORT": ("PORT", 8000),
}

# Multipart framing around the file (boundaries, part headers) on top of the file itself.
MULTIPART_SLACK_BYTES = 1024 * 1024


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from `environ` (default: os.environ), each converted to its default's type."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for key, (variable, default) in ENV_SETTINGS.items():
        raw = environ.get(variable)
        config[key] = default if raw in (None, "") else _convert(variable, raw, type(default))
    return config


def max_content_length(max_upload_mb: float) -> int:
    """Largest request body Flask accepts: the file limit plus room for the multipart framing."""
    return int(max_upload_mb * 1024 * 1024) + MULTIPART_SLACK_BYTES


def _convert(variable: str, raw: str, kind: type) -> Any:
    if kind is str:
        return raw.strip().rstrip("/")
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(
            f"environment variable {variable}={raw!r} is not a valid {kind.__name__}"
        ) from None
    if value <= 0:
        raise ValueError(f"environment variable {variable}={raw!r} must be positive")
    return value
