"""The allow-list in force, as scoring reads it: every prediction applies the entries in force
when it starts (utils/allowlist.py), and the analyst's routes (server/analyst.py) edit them.
"""

from __future__ import annotations

import logging

from server.uploads import get_sink
from utils.allowlist import AllowList, load_allowlist
from utils.registry import Registry

log = logging.getLogger("anomalyze.server")


def analyst_registry() -> Registry:
    """The registry that keeps the allow-list and the verdicts (the uploads' one)."""
    return get_sink().registry


def current_allowlist() -> AllowList:
    """The entries in force now. A registry that cannot be read must not stop scoring: the
    prediction goes on without the list (logged)."""
    try:
        return load_allowlist(analyst_registry())
    except Exception as exc:  # BackendUnavailable, sqlite3.Error, OSError, busy: never a 500
        log.error("allow-list not applied: %s: %s", type(exc).__name__, exc)
        return AllowList()
