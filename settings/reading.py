"""A setting (one row of the table) and reading a process's settings from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from settings.parsers import Parser

# The processes that read settings, each once when it starts: the ML API's app factory, the
# frontend's app factory, the ML API's gunicorn.conf.py, the self-hosted frontend's
# gunicorn_frontend.conf.py, every script's main() (benchmarks included), and the test suite's
# fixtures.
READERS = ("api", "frontend", "gunicorn", "gunicorn_frontend", "scripts", "tests")
PREFIX = "ANOMALYZE_"
_MAX_SHOWN = 80


class SettingError(ValueError):
    """One or more environment variables hold a value their setting refuses."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default, what it accepts, who reads it, what it means.

    ``default`` is the value itself (already parsed) used when the variable is unset or blank;
    None means the reader works it out, as ``shown`` tells the docs ("the usable cores").
    """

    name: str
    default: Any
    parse: Parser
    readers: tuple[str, ...]
    meaning: str
    shown: str | None = None

    @property
    def key(self) -> str:
        """The name in a process's config (Flask's ``app.config``): without the prefix."""
        return self.name.removeprefix(PREFIX)

    def read(self, environ: Mapping[str, str]) -> Any:
        raw = environ.get(self.name, "")
        text = raw.strip()
        if not text:
            return self.default
        try:
            return self.parse(text)
        except (ValueError, TypeError):
            given = "(hidden)" if self.parse.secret else repr(_shorten(raw))
            raise SettingError(f"environment variable {self.name}={given}: must be "
                               f"{self.parse.accepts}") from None


def read_settings(table: Iterable[Setting], reader: str,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting of ``table`` that ``reader`` reads, by key, from ``environ`` (default:
    os.environ). Raises SettingError naming every variable with a refused value, so one
    failed start names them all."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; one of {', '.join(READERS)}")
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in table:
        if reader in setting.readers:
            try:
                values[setting.key] = setting.read(environ)
            except SettingError as exc:
                problems.append(str(exc))
    if problems:
        raise SettingError("; ".join(problems))
    return values


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
