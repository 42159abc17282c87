"""Every environment variable Anomalyze reads, in one table, read once when a process starts.

The table (settings/table.py) gives each variable its default, its parser, the processes that
read it and one line of meaning; docs/CONFIG.md and docs/FRONTEND.md are generated from it
(``python -m settings --markdown``; a test fails when they differ). Each process reads its
settings once at start-up, and a refused value stops that start naming the variable:

- the ML API: ``server.create_app`` -> ``load_settings("api")`` into ``app.config``;
- the frontend: ``api.app_vercel.create_app`` -> ``load_settings("frontend")``;
- gunicorn: ``gunicorn.conf.py`` -> ``load_settings("gunicorn")``, and for the self-hosted
  frontend ``gunicorn_frontend.conf.py`` -> ``load_settings("gunicorn_frontend")``;
- the scripts and benchmarks: first line of each ``main()`` -> ``script_settings()``;
- the tests: their fixtures -> ``load_settings("tests")``.

From there values travel as config entries and arguments; the library (``utils/``) takes
parameters and never reads the environment.

Why a top-level package: the frontend (``api/``) may import nothing from ``server/`` or
``utils/`` (it talks to the API over HTTP and Vercel deploys it alone, with only Flask and
requests installed), and ``utils/`` may import nothing from ``server/``, ``api/`` or the
scripts. A package beside them, written with the standard library only and importing none of
them, can be imported by all (as is ``contract/``). vercel.json lists ``settings/**`` in the
function's ``includeFiles`` so the frontend's deployment carries it. ``make lint`` checks
these rules (import-linter, pyproject.toml).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from settings.reading import READERS, Setting, SettingError, read_settings
from settings.table import REPO_ROOT, SETTINGS

__all__ = ["READERS", "REPO_ROOT", "SETTINGS", "Setting", "SettingError", "load_settings",
           "script_settings"]


def load_settings(reader: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings ``reader`` (one of READERS) reads, by key, from ``environ`` (default:
    os.environ); SettingError (a ValueError) names every variable whose value is refused."""
    return read_settings(SETTINGS, reader, environ)


def script_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The scripts' settings; a refused value ends the script (exit code 2) saying why."""
    try:
        return load_settings("scripts", environ)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
