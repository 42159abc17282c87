"""Numeric settings from environment variables, read and refused the same way everywhere."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping


def whole_number_setting(
    name: str, default: int, *, minimum: int = 0, environ: Mapping[str, str] | None = None
) -> int:
    """``environ[name]`` (default os.environ) as an int >= ``minimum``; unset or empty: default."""
    value = _setting(name, environ, int, "a whole number")
    if value is None:
        return default
    if value < minimum:
        rule = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise ValueError(f"{name} {rule}, got {value!r}")
    return value


def positive_number_setting(
    name: str, default: float, *, unit: str, environ: Mapping[str, str] | None = None
) -> float:
    """``environ[name]`` as a float > 0 (``unit`` names it in errors); unset or empty: default."""
    value = _setting(name, environ, float, f"a number of {unit}")
    if value is None:
        return default
    if not value > 0:  # NaN too
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def number_setting(
    name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """``environ[name]`` as a float from ``minimum`` to ``maximum``; unset or empty: default."""
    value = _setting(name, environ, float, "a number")
    if value is None:
        return default
    if not minimum <= value <= (math.inf if maximum is None else maximum):  # NaN too
        upper = "" if maximum is None else f" and at most {maximum:g}"
        raise ValueError(f"{name} must be at least {minimum:g}{upper}, got {value!r}")
    return value


def _setting(name: str, environ: Mapping[str, str] | None, kind: type, what: str):
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None
