"""The one JSON error shape both Flask apps (the ML API and the frontend) answer with."""

from __future__ import annotations

from typing import Any


class JsonError(Exception):
    """A failure with the HTTP status, machine-readable type and message a client should get.

    Serialises as ``{"success": false, "error": …, "error_type": …, "problems": […]}``
    (docs/API.md).
    """

    def __init__(self, status: int, error_type: str, message: str,
                 problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.problems = problems or []

    def to_dict(self) -> dict[str, Any]:
        return {"success": False, "error": self.message, "error_type": self.error_type,
                "problems": self.problems}
