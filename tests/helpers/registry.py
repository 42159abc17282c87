"""Registering an upload in the registry the way the server does, without the server."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from utils.readers import read_records
from utils.registry import Registration, UploadQuota
from utils.registry import SQLiteRegistry as UploadRegistry


def register(registry: UploadRegistry, data: bytes, name: str = "traffic.txt",
             threshold: int = 10, *, trusted: bool = False, client: str | None = "127.0.0.1",
             quota: UploadQuota | None = None) -> Registration:
    """Register ``data`` the way the server does: a temp file in the data folder, parsed.
    Anonymous by default, like an upload without the admin token."""
    incoming = registry.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=incoming, suffix=".part", delete=False) as handle:
        handle.write(data)
    records = read_records(data)
    result = registry.register(
        handle.name, sha256=hashlib.sha256(data).hexdigest(), original_name=name,
        rows=len(records), has_labels=records.has_labels, input_kind=records.input_kind,
        threshold=threshold, trusted=trusted, client=client, quota=quota)
    if not result.stored:
        Path(handle.name).unlink()
    return result
