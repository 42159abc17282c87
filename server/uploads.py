"""Receiving uploads: streamed to disk under the data folder, hashed on the way, kept if valid.

Werkzeug would spool a large upload to a temp file of its own (and small ones to memory)
before the view sees it; ``UploadRequest`` hands it our ``HashingSpool`` instead, so the file
is written once, under ``<data_dir>/incoming/``, with its SHA-256 computed as it arrives and its
size limit enforced while it is written. ``UploadSink.register`` hands each valid upload to the
upload registry (utils/registry/, docs/LEARNING.md), which keeps it once per
content as ``<data_dir>/uploaded_logs/<UTC timestamp>-<sha256[:16]>.<ext>``, within the upload
quota, and counts it towards the next retrain.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from flask import Flask, Request, current_app
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from server.config import megabytes, upload_limit_bytes
from server.disk_space import is_out_of_space, is_storage_failure
from server.multipart import FILE_FIELD, UploadFormParser
from server.signals import retrain_due
from utils.registry import Registry, UploadQuota, open_registry

log = logging.getLogger("anomalyze.server")

INCOMING_DIR = "incoming"
STORED_DIR = "uploaded_logs"
EXTENSION_KEY = "anomalyze.uploads"

_BLOCK = 1 << 20
_STALE_SECONDS = 3600
_SPOOL_SUFFIX = ".part"


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
    refused without being stored first. Closing it deletes the temp file unless it was moved,
    and never raises: it runs in the request's cleanup, where an exception would cost the client
    its answer and leave the file behind.
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
        try:
            # On a full disk the flush of the last buffered bytes fails (ENOSPC); they belong
            # to a file being thrown away, and the descriptor is closed all the same.
            self._file.close()
        except OSError as exc:
            log.warning("temp upload %s closed with %s", self.path.name, exc)
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # left for remove_stale_spools at the next start
            log.error("temp upload %s not deleted: %s", self.path.name, exc)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __getattr__(self, name: str) -> Any:  # read, readline, seek, tell, flush, ...
        return getattr(self._file, name)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._file)


class UploadRequest(Request):
    """Flask's request, with the file part streamed into an UploadSink spool
    (server/multipart.py decides which part that is; a view that takes several files sets
    ``file_fields`` before it reads the form)."""

    form_data_parser_class = UploadFormParser
    file_fields: Mapping[str, int] = MappingProxyType({FILE_FIELD: 1})

    def make_form_data_parser(self) -> UploadFormParser:
        return self.form_data_parser_class(
            stream_factory=self._get_file_stream,
            max_form_memory_size=self.max_form_memory_size,
            max_content_length=self.max_content_length,
            max_form_parts=self.max_form_parts,
            cls=self.parameter_storage_class,
            file_fields=self.file_fields,
        )

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

    def __init__(self, data_dir: Path | str, max_bytes: int | None = None,
                 quota: UploadQuota | None = None, registry: Registry | None = None, *,
                 retrain_threshold: int | None = None,
                 on_retrain_due: Callable[[], object] = lambda: None) -> None:
        """``registry``: a shared one (server/backends.py); None opens the embedded one."""
        self.data_dir = Path(data_dir)
        self.incoming_dir = self.data_dir / INCOMING_DIR
        self.stored_dir = self.data_dir / STORED_DIR
        self.max_bytes = max_bytes
        self.quota = quota  # None: no quota on kept uploads
        self._registry: Registry | None = registry
        self.retrain_threshold = retrain_threshold  # None: the registry's default
        self.on_retrain_due = on_retrain_due
        try:
            self.registry  # noqa: B018  (opened now, so a broken data folder shows at start)
        except (OSError, sqlite3.Error) as exc:
            if not (is_out_of_space(exc) or is_storage_failure(exc)):
                raise
            # A server restarted on a full disk must still start and score; the registry is
            # opened again by the next request that needs it.
            log.error("upload registry not opened: %s: %s", type(exc).__name__, exc)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = open_registry(self.data_dir)
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self._registry = registry

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
        self, received: Received, rows: int, has_labels: bool, input_kind: str, *,
        trusted: bool = False, client: str | None = None, threshold: int | None = None,
        counted: bool = True,
    ) -> dict[str, Any]:
        """Keep a valid upload unless the same content is already kept or the quota is
        reached; count it.

        ``duplicate``: the registry has an upload with this SHA-256. ``stored``: this upload
        was kept now; if not, ``store_reason`` says why (``duplicate``, ``quota_total``,
        ``quota_client``). ``trusted``: it came with the admin token, so its labels may teach
        the model; ``client``: the address it came from. When it completes a batch of
        ``retrain_threshold`` new uploads, ``on_retrain_due`` is called (in the app: the
        ``retrain_due`` signal, which server/retrain.py answers by starting a retrain);
        ``threshold`` 0 never does; ``counted`` False does not count it at all (input no
        retrain learns from: Zeek logs, an admin's baseline files).
        Only call it for uploads that parsed.
        """
        registration = self.registry.register(
            received.path, sha256=received.sha256, original_name=received.original_name,
            rows=rows, has_labels=has_labels, input_kind=input_kind,
            threshold=self.retrain_threshold if threshold is None else threshold,
            trusted=trusted, client=client, quota=self.quota, counted=counted)
        if registration.retrain_due:
            self.on_retrain_due()
        return {"duplicate": registration.duplicate, "stored": registration.stored,
                "store_reason": registration.reason}


def init_app(app: Flask, registry: Registry | None = None) -> UploadSink:
    """Attach the app's UploadSink and make Flask stream file uploads into it (``registry``
    None: the embedded SQLite one in the data folder)."""
    quota = UploadQuota(
        total_bytes=megabytes(app.config["UPLOAD_QUOTA_MB"]),
        client_bytes=megabytes(app.config["UPLOAD_CLIENT_QUOTA_MB"]),
        client_window_seconds=app.config["UPLOAD_CLIENT_WINDOW_HOURS"] * 3600.0)
    sink = UploadSink(app.config["DATA_DIR"], upload_limit_bytes(app.config["MAX_UPLOAD_MB"]),
                      quota, registry, retrain_threshold=app.config["RETRAIN_THRESHOLD"],
                      on_retrain_due=lambda: retrain_due.send(app))
    sink.remove_stale_spools()
    app.extensions[EXTENSION_KEY] = sink
    app.request_class = UploadRequest
    return sink


def get_sink() -> UploadSink:
    return current_app.extensions[EXTENSION_KEY]
