"""The frontend's settings: the rows of the settings table (settings/table.py) that
``frontend`` reads, documented in docs/FRONTEND.md.

Parsed once at start-up so that a mistyped value fails loudly with the variable's name
instead of surfacing later as a confusing timeout. Durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from settings import load_settings

# Multipart framing around the file (boundaries, part headers) on top of the file itself.
MULTIPART_SLACK_BYTES = 1024 * 1024


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from `environ` (default: os.environ); a refused value raises
    settings.SettingError (a ValueError) naming the variable."""
    return load_settings("frontend", environ)


def max_content_length(max_upload_mb: float) -> int:
    """Largest request body Flask accepts: the file limit plus room for the multipart framing."""
    return int(max_upload_mb * 1024 * 1024) + MULTIPART_SLACK_BYTES
