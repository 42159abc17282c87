"""What a setting's text may be, and the value it becomes.

A ``Parser`` turns the text of an environment variable into a value and says, in a few words,
what it accepts (the docs table and every error message use those words). ``refuses`` is one
text it refuses: the start-up tests feed it to every process that reads the setting. Only
parsers that accept every text (paths, free text) have none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Parser:
    accepts: str  # "a number above 0": completes "must be ..." in errors
    convert: Callable[[str], Any]  # raises ValueError (or TypeError) for a refused text
    refuses: str | None  # a text it refuses; None: every text is valid
    secret: bool = False  # never echo the text (in errors or docs)

    def __call__(self, text: str) -> Any:
        return self.convert(text)


def number(*, above: float | None = None, at_least: float | None = None,
           at_most: float | None = None) -> Parser:
    """A finite float within the bounds (NaN and infinity are always refused)."""

    def convert(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("not finite")
        if above is not None and not value > above:
            raise ValueError("too small")
        if at_least is not None and not value >= at_least:
            raise ValueError("too small")
        if at_most is not None and not value <= at_most:
            raise ValueError("too large")
        return value

    if at_least is not None and at_most is not None:
        accepts, refuses = f"a number from {at_least:g} to {at_most:g}", f"{at_least - 1:g}"
    elif above is not None:
        accepts, refuses = f"a number above {above:g}", f"{above:g}"
    elif at_least is not None:
        accepts, refuses = f"a number, at least {at_least:g}", f"{at_least - 1:g}"
    else:
        accepts, refuses = "a number", "lots"
    return Parser(accepts, convert, refuses)


def whole_number(*, at_least: int) -> Parser:
    def convert(text: str) -> int:
        value = int(text)
        if value < at_least:
            raise ValueError("too small")
        return value

    return Parser(f"a whole number, at least {at_least}", convert, str(at_least - 1))


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError("not a TCP port")
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return text.rstrip("/")


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname
                              or parts.path or parts.query or parts.fragment):
            raise ValueError(f"not an origin: {origin!r}")
    return origins


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise ValueError("unknown level")
    return level


def _k_values(text: str) -> tuple[int, ...]:
    """"4,6,8" -> (4, 6, 8); at least one k, each a whole number >= 1."""
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if not values or min(values) < 1:
        raise ValueError(f"k values must be positive whole numbers, got {text!r}")
    return values


# The rate notation of the `limits` library (Flask-Limiter's engine): "10 per minute",
# "5/30 seconds", several joined by "," ";" or "|". Written out here because this package
# uses the standard library only; tests/api/test_server_config.py checks that `limits` agrees.
_RATE = (r"\s*[0-9]+\s*(?:/|\s*per\s*)\s*(?:[0-9]+)?"
         r"\s*(?:year|month|day|hour|minute|second)s?\s*")
_RATES = re.compile(rf"{_RATE}(?:[,;|]{_RATE})*", re.IGNORECASE)


def _rate_limit(text: str) -> str:
    if not _RATES.fullmatch(text):
        raise ValueError("not a rate")
    return text


MIN_TOKEN_LENGTH = 16


def _token(text: str) -> str:
    if len(text) < MIN_TOKEN_LENGTH or not text.isascii() or not text.isprintable() or any(
            char.isspace() for char in text):
        raise ValueError("weak or malformed token")
    return text


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _boolean(text: str) -> bool:
    word = text.lower()
    if word not in _TRUE | _FALSE:
        raise ValueError("not a yes or no")
    return word in _TRUE


def _postgres_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or parts.query):
        raise ValueError("not a postgresql:// URL")
    return text


def _s3_url(text: str) -> str:
    """``s3://bucket`` or ``s3://bucket/prefix``; returned without a trailing slash."""
    parts = urlsplit(text)
    if parts.scheme != "s3" or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                                                 parts.netloc or ""):
        raise ValueError("not an s3://bucket/prefix URL")
    return text.rstrip("/")


path = Parser("a path", _path, None)
free_text = Parser("any text", str, None)
port = Parser("a TCP port (1-65535)", _port, "70000")
http_url = Parser("an http:// or https:// URL", _http_url, "localhost:5000")
origins = Parser("comma-separated origins (https://host[:port]) or *", _origins,
                 "ui.example.org")
log_level = Parser(", ".join(LOG_LEVELS[:-1]) + " or " + LOG_LEVELS[-1], _log_level, "chatty")
k_list = Parser("comma-separated k values (whole numbers, at least 1)", _k_values, "4,x")
rate_limit = Parser('a rate such as "10 per minute" or "5/30 seconds"', _rate_limit, "lots")
boolean = Parser("true or false (also 1/0, yes/no, on/off)", _boolean, "maybe")
# A database URL may carry a password: never echoed.
postgres_url = Parser("a postgresql:// URL", _postgres_url, "mysql://db/anomalyze", secret=True)
s3_url = Parser("an s3://bucket/prefix URL", _s3_url, "bucket/prefix")
token = Parser(f"at least {MIN_TOKEN_LENGTH} printable ASCII characters, no spaces", _token,
               "short", secret=True)
