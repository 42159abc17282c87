"""Query parameters read strictly: what the documentation says, or a 400 naming the parameter.

Python's ``int`` accepts far more than "a whole number": ``1_000``, ``+5``, `` 1 ``, and digits of
any script (``١٠``). A query parameter is plain ASCII digits here, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from server.errors import ApiError

_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only; 18 digits stay far below int64 and 4300


def whole_number(args: Mapping[str, str], name: str, *, default: int, maximum: int,
                 minimum: int = 0) -> int:
    """``args[name]`` as an int from ``minimum`` to ``maximum``; absent or empty: ``default``."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not minimum <= value <= maximum:
        raise ApiError(400, "invalid_parameter",
                       f"{name} must be a whole number from {minimum} to {maximum} in plain "
                       f"digits, got {raw[:40]!r}")
    return value
