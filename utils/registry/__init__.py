"""The upload registry (kept uploads, the retrain counter, queue, lock and run log): its
interface, and the embedded backend on SQLite and local files (with the allow-list and
analyst feedback tables)."""

from __future__ import annotations

from pathlib import Path

from utils.registry.file_lock import LOCK_FILE, RetrainLock
from utils.registry.interface import (
    DEFAULT_THRESHOLD,
    OUTCOMES,
    STATUSES,
    NotQuarantined,
    Registration,
    Registry,
    RegistryBusyError,
    RetrainBusy,
    RunLock,
    UnknownUpload,
    Upload,
    UploadQuota,
    utc_timestamp,
)
from utils.registry.kept_files import ARCHIVE_DIR, UPLOADS_DIR, sanitise_name
from utils.registry.sqlite import DB_FILE, SQLiteRegistry, pid_alive

__all__ = [
    "ARCHIVE_DIR", "DB_FILE", "DEFAULT_THRESHOLD", "LOCK_FILE", "OUTCOMES", "STATUSES",
    "UPLOADS_DIR", "NotQuarantined", "Registration", "Registry", "RegistryBusyError",
    "RetrainBusy", "RetrainLock", "RunLock", "SQLiteRegistry", "UnknownUpload", "Upload",
    "UploadQuota", "open_registry", "pid_alive", "sanitise_name", "utc_timestamp",
]


def open_registry(data_dir: Path | str, url: str | None = None) -> Registry:
    """The registry the settings name: ``url`` None (the default) is SQLite and kept files
    under ``data_dir``; other backends are chosen by the URL's scheme."""
    if url is None:
        return SQLiteRegistry(data_dir)
    scheme = url.split(":", 1)[0]
    raise ValueError(f"no registry backend for {scheme!r} URLs in this build")
