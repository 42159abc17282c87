"""The allow-list a watcher applies, read again from the registry now and then.

An analyst's new entry (or a removed one) reaches a running watcher within ``every`` seconds,
without a registry read per batch. A registry that cannot be read must not stop the
watching: the list read last stays in force (none before the first read), and it is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from utils.allowlist import AllowList, load_allowlist

log = logging.getLogger("anomalyze.watch")

REFRESH_SECONDS = 30.0


class RefreshingAllowList:
    """``current()``: the entries in force in ``registry`` (utils.registry), at most
    ``every`` seconds old."""

    def __init__(self, registry: Any, every: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.every = every
        self.clock = clock
        self._list = AllowList()
        self._next_read: float | None = None

    def current(self) -> AllowList:
        now = self.clock()
        if self._next_read is None or now >= self._next_read:
            self._next_read = now + self.every
            try:
                fresh = load_allowlist(self.registry)
            except Exception as exc:  # BackendUnavailable, sqlite3.Error, OSError, busy
                log.error("allow-list not re-read (the last one read stays in force): %s: %s",
                          type(exc).__name__, exc)
            else:
                if len(fresh) != len(self._list):
                    log.info("%d allow-list entries in force", len(fresh))
                self._list = fresh
        return self._list
