"""Service settings read from environment variables (documented in docs/CONFIG.md).

Parsed once when the app is created, so a mistyped value stops the server at start-up with the
variable's name instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

# Room for the multipart framing (boundary, part headers) around the uploaded file itself.
MULTIPART_SLACK_BYTES = 1 << 20


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be positive")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must not be negative")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port (1-65535)")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


# app.config key -> (environment variable, default, parser of the variable's text).
ENV_SETTINGS: dict[str, tuple[str, Any, Any]] = {
    "MODEL_DIR": ("ANOMALYZE_MODEL_DIR", REPO_ROOT / "models", _path),
    "DATA_DIR": ("ANOMALYZE_DATA_DIR", REPO_ROOT / "data", _path),
    "MAX_UPLOAD_MB": ("ANOMALYZE_MAX_UPLOAD_MB", 200.0, _positive_float),
    "MAX_JSON_MB": ("ANOMALYZE_MAX_JSON_MB", 20.0, _positive_float),
    # Kept uploads: at most this much in all, and per client address within the window.
    "UPLOAD_QUOTA_MB": ("ANOMALYZE_UPLOAD_QUOTA_MB", 1024.0, _positive_float),
    "UPLOAD_CLIENT_QUOTA_MB": ("ANOMALYZE_UPLOAD_CLIENT_QUOTA_MB", 256.0, _positive_float),
    "UPLOAD_CLIENT_WINDOW_HOURS": ("ANOMALYZE_UPLOAD_CLIENT_WINDOW_HOURS", 24.0,
                                   _positive_float),
    "CORS_ORIGINS": ("ANOMALYZE_CORS_ORIGINS", (), _origins),
    "MODEL_CHECK_INTERVAL": ("ANOMALYZE_MODEL_CHECK_INTERVAL", 1.0, _non_negative_float),
    "LOG_LEVEL": ("ANOMALYZE_LOG_LEVEL", "INFO", _log_level),
    "PORT": ("PORT", 5000, _port),
}


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from ``environ`` (default: os.environ); unset or empty variables get defaults."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for key, (variable, default, parse) in ENV_SETTINGS.items():
        raw = environ.get(variable, "")
        if not raw.strip():
            config[key] = default
            continue
        try:
            config[key] = parse(raw.strip())
        except ValueError as exc:
            raise ValueError(f"environment variable {variable}={raw!r}: {exc}") from None
    return config


def max_content_length(max_upload_mb: float) -> int:
    """Largest request body accepted: the file limit plus room for the multipart framing."""
    return upload_limit_bytes(max_upload_mb) + MULTIPART_SLACK_BYTES


def upload_limit_bytes(max_upload_mb: float) -> int:
    return int(max_upload_mb * (1 << 20))
