"""Kept uploads as files on the local disk: their names, and the folders of their life cycle.

``<data_dir>/uploaded_logs/`` holds pending, used and quarantined uploads, ``archived/`` inside
it those in a promoted model's training data. A file is named by the server, never by the
client (``<UTC timestamp>-<sha256[:16]>.<ext>``), so a client's name can never be a path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from utils.durable_files import fsync_dir

UPLOADS_DIR = "uploaded_logs"
ARCHIVE_DIR = "archived"

_KNOWN_EXTENSIONS = frozenset({"txt", "csv", "tsv", "log", "json", "gz"})
_GZIP_MAGIC = b"\x1f\x8b"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_NAME = 255


def sanitise_name(name: str | None) -> str:
    """The client's file name as metadata only: last path component, printable, bounded."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNPRINTABLE.sub("", base).strip()
    if base in {"", ".", ".."}:
        return "upload"
    return base[:_MAX_NAME]


def stored_file_name(sha256: str, original_name: str | None, content: Path) -> str:
    """``<UTC timestamp>-<sha256[:16]>.<ext>``: never the client's name, so never a path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = Path(sanitise_name(original_name)).suffix.lower().lstrip(".")
    if suffix not in _KNOWN_EXTENSIONS:
        with open(content, "rb") as handle:
            suffix = "gz" if handle.read(2) == _GZIP_MAGIC else "txt"
    return f"{stamp}-{sha256[:16]}.{suffix}"


def pending_path(stored_path: str) -> str:
    """Where a file goes back to when its upload leaves the archive (a release)."""
    return f"{UPLOADS_DIR}/{Path(stored_path).name}"


def reconcile(data_dir: Path, stored_paths: Iterable[str]) -> int:
    """Move each file to where its row says (``stored_path``, relative to ``data_dir``) when
    it is in the other folder instead; returns files moved.

    The database is updated before files move (it is the source of truth), so this finishes
    moves a crash interrupted.
    """
    uploads_dir = data_dir / UPLOADS_DIR
    archive_dir = uploads_dir / ARCHIVE_DIR
    moved = 0
    for stored_path in stored_paths:
        target = data_dir / stored_path
        other = archive_dir if target.parent == uploads_dir else uploads_dir
        source = other / target.name
        if not target.exists() and source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            moved += 1
    if moved:
        fsync_dir(archive_dir)
        fsync_dir(uploads_dir)
    return moved
