"""The allow-list a batch job applies: read once on the client, applied by every task.

The client reads the entries in force from the registry the settings name (the one the API,
the watcher and ``analyst_admin.py`` keep them in) and ships them with the tasks: a few small
frozen records, never a registry handle, so workers need no database access and every piece
of one job is judged by the same list. A registry that cannot be opened does not stop the
job: it scores without a list (every anomaly is an alert) and says so on stderr.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Mapping
from typing import Any

from utils.allowlist import AllowEntry, AllowList, load_allowlist
from utils.scoring import ScoredRecords


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def job_allowlist(config: Mapping[str, Any],
                  warn: Callable[[str], None] = _stderr) -> tuple[AllowEntry, ...]:
    """The entries in force in the registry of the scripts' ``config`` (DATA_DIR,
    DATABASE_URL); none, with a warning, when the registry cannot be opened or read.
    BackendConfigError (settings that cannot work together) is left to the caller."""
    from utils.backend_errors import BackendUnavailable
    from utils.backends import open_backends

    try:
        registry = open_backends(config["DATA_DIR"], config["MODEL_DIR"],
                                 database_url=config.get("DATABASE_URL")).registry
        return tuple(load_allowlist(registry).entries)
    except (BackendUnavailable, OSError, sqlite3.Error, RuntimeError) as exc:
        warn(f"warning: no allow-list applied (every anomaly is an alert): the registry "
             f"cannot be read: {type(exc).__name__}: {exc}")
        return ()


def apply_entries(entries: tuple[AllowEntry, ...], records: Any,
                  scored: ScoredRecords) -> ScoredRecords:
    """``scored`` with ``allowlisted`` set (all 0 without entries): what a task writes."""
    return AllowList(entries).apply(records, scored)
