"""The ML API's settings: the rows of the settings table (settings/table.py) that ``api`` reads.

Parsed once when the app is created, so a mistyped value stops the server at start-up with the
variable's name instead of surfacing later as a confusing failure. Request handlers read them
from ``app.config`` and pass them on to the library as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from settings import REPO_ROOT, load_settings

__all__ = ["REPO_ROOT", "load_config", "max_content_length", "megabytes", "upload_limit_bytes"]

# Room for the multipart framing (boundary, part headers) around the uploaded file itself.
MULTIPART_SLACK_BYTES = 1 << 20


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from ``environ`` (default: os.environ); unset or empty variables get defaults.

    Raises settings.SettingError (a ValueError) naming each variable with a refused value.
    """
    return load_settings("api", environ)


def max_content_length(max_upload_mb: float) -> int:
    """Largest request body accepted: the file limit plus room for the multipart framing."""
    return upload_limit_bytes(max_upload_mb) + MULTIPART_SLACK_BYTES


def upload_limit_bytes(max_upload_mb: float) -> int:
    return megabytes(max_upload_mb)


def megabytes(mb: float) -> int:
    """A size setting in MB (2^20 bytes) as a number of bytes."""
    return int(mb * (1 << 20))
