"""Receiving uploads: streamed to disk under the data folder, hashed on the way, kept if valid.

Werkzeug would spool a large upload to a temp file of its own (and small ones to memory)
before the view sees it; ``UploadRequest`` hands it our ``HashingSpool`` instead, so the file
is written once, under ``<data_dir>/incoming/``, with its SHA-256 computed as it arrives and its
size limit enforced while it is written. ``UploadSink.register`` is the one seam issue 4
replaces (SQLite registry, retrain trigger); this minimal version keeps each distinct valid
upload as ``<data_dir>/uploaded_logs/<UTC timestamp>-<sha256[:16]>.<ext>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from flask import Flask, Request, current_app
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from server.config import upload_limit_bytes

INCOMING_DIR = "incoming"
STORED_DIR = "uploaded_logs"
EXTENSION_KEY = "anomalyze.uploads"

_BLOCK = 1 << 20
_STALE_SECONDS = 3600
_SPOOL_SUFFIX = ".part"
_KNOWN_EXTENSIONS = frozenset({"txt", "csv", "tsv", "log", "json", "gz"})
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Received:
    """An upload on disk (a temp file until ``register`` keeps it)."""

    path: Path
    sha256: str
    size: int
    original_name: str


class HashingSpool:
    """A writable, readable temp file that hashes and counts what is written to it.

    Writing past ``max_bytes`` raises RequestEntityTooLarge at once, so an oversized upload is
    refused without being stored first. Closing it deletes the temp file unless it was moved.
    """

    def __init__(self, directory: Path, max_bytes: int | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=_SPOOL_SUFFIX, dir=directory)
        self.path = Path(name)
        self.max_bytes = max_bytes
        self.size = 0
        self._sha = hashlib.sha256()
        self._file: IO[bytes] = os.fdopen(fd, "w+b")

    def write(self, data: bytes) -> int:
        size = self.size + len(data)
        if self.max_bytes is not None and size > self.max_bytes:
            raise RequestEntityTooLarge()
        self._file.write(data)
        self._sha.update(data)
        self.size = size
        return len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __getattr__(self, name: str) -> Any:  # read, readline, seek, tell, flush, ...
        return getattr(self._file, name)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._file)


class UploadRequest(Request):
    """Flask's request, with file parts streamed into the app's UploadSink spools."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        spool = current_app.extensions[EXTENSION_KEY].open_spool()
        # Kept here too: if parsing fails half-way, werkzeug never lists the file in
        # request.files, and close() would not find it.
        self.__dict__.setdefault("_anomalyze_spools", []).append(spool)
        return spool  # type: ignore[return-value]

    def close(self) -> None:
        try:
            super().close()
        finally:
            for spool in self.__dict__.get("_anomalyze_spools", ()):
                spool.close()


class UploadSink:
    """Where uploads go: temp files while they are checked, a folder of kept files after."""

    def __init__(self, data_dir: Path | str, max_bytes: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.incoming_dir = self.data_dir / INCOMING_DIR
        self.stored_dir = self.data_dir / STORED_DIR
        self.max_bytes = max_bytes

    def remove_stale_spools(self, older_than: float = _STALE_SECONDS) -> int:
        """Delete temp files a killed process left behind; returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        for path in self.incoming_dir.glob(f".upload-*{_SPOOL_SUFFIX}"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def open_spool(self) -> HashingSpool:
        return HashingSpool(self.incoming_dir, self.max_bytes)

    def receive(self, file_storage: FileStorage) -> Received:
        """The upload as a hashed file on disk (copied in blocks if it was not spooled by us)."""
        stream = file_storage.stream
        if not isinstance(stream, HashingSpool):
            spool = self.open_spool()
            try:
                while block := stream.read(_BLOCK):
                    spool.write(block)
            except BaseException:
                spool.close()
                raise
            file_storage.stream = spool  # closed (and deleted) with the request's files
            stream = spool
        stream.flush()
        return Received(path=stream.path, sha256=stream.hexdigest(), size=stream.size,
                        original_name=Path(file_storage.filename or "").name[:255])

    def discard(self, received: Received) -> None:
        """Delete the temp file of an upload that was not kept (no-op once registered)."""
        received.path.unlink(missing_ok=True)

    def register(
        self, received: Received, rows: int, has_labels: bool, input_kind: str
    ) -> dict[str, bool]:
        """Keep a valid upload unless the same content is already kept.

        ``duplicate``: a kept file has this SHA-256 (its first 16 hex digits, which are in the
        name). ``stored``: this upload was kept now. Only call it for uploads that parsed.
        """
        self.stored_dir.mkdir(parents=True, exist_ok=True)
        prefix = received.sha256[:16]
        with self._locked():
            if next(self.stored_dir.glob(f"*-{prefix}.*"), None) is not None:
                return {"duplicate": True, "stored": False}
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            target = self.stored_dir / f"{stamp}-{prefix}.{self._extension(received)}"
            with open(received.path, "rb") as handle:
                os.fsync(handle.fileno())  # the content is durable before its name appears
            os.replace(received.path, target)
        return {"duplicate": False, "stored": True}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise check-then-store across threads and worker processes."""
        with open(self.stored_dir / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _extension(received: Received) -> str:
        """The client's extension when it is a plain known one, else one read from the content."""
        suffix = Path(received.original_name).suffix.lower().lstrip(".")
        if suffix in _KNOWN_EXTENSIONS:
            return suffix
        with open(received.path, "rb") as handle:
            return "gz" if handle.read(2) == _GZIP_MAGIC else "txt"


def init_app(app: Flask) -> UploadSink:
    """Attach the app's UploadSink and make Flask stream file uploads into it."""
    sink = UploadSink(app.config["DATA_DIR"], upload_limit_bytes(app.config["MAX_UPLOAD_MB"]))
    sink.remove_stale_spools()
    app.extensions[EXTENSION_KEY] = sink
    app.request_class = UploadRequest
    return sink


def get_sink() -> UploadSink:
    return current_app.extensions[EXTENSION_KEY]
