"""Model versions and kept uploads on the object store, the current-model pointer in PostgreSQL.

Every instance keeps its own model folder, as on one machine, and mirrors the shared pointer
into it: ``SharedModels.sync`` reads the pointer (one indexed row), and when it names a model
the folder does not hold yet, downloads it, checks its SHA-256 and renames it into place; the
API's model holder then hot-swaps it as it does any replaced ``model.joblib``. A promotion is
the retrain process uploading the new version and, in the transaction that closes its run,
moving the pointer; a rollback quarantines the uploads and moves the pointer in one
transaction. No instance ever serves a model the pointer did not name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from utils.durable_files import atomic_write_bytes
from utils.model_store import CARD_FILE, MODEL_FILE, card_json
from utils.object_store import ObjectStore, sha256_of
from utils.pg_registry import PostgresRegistry, PostgresRetrainLock, RegistryUnavailable
from utils.registry.interface import RetrainBusy, Upload

POINTER_MARK = ".pointer"  # in a model folder: which pointer model its model.joblib is
SYNC_LOCK = ".sync.lock"


class StoreFiles:
    """Kept uploads as objects ``<prefix>/uploads/<sha256>``; read back through a local cache
    in ``cache_dir`` (checked against the SHA-256 on every download)."""

    def __init__(self, store: ObjectStore, cache_dir: Path) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir)

    def keep(self, path: Path, sha256: str, original_name: str | None) -> str:
        return self.store.put_file("uploads", sha256, path)

    def forget(self, location: str, path: Path) -> None:
        """Nothing: the object may already back another instance's row of the same content."""

    def local_path(self, upload: Upload) -> Path:
        return self.store.fetch(upload.stored_path, upload.sha256,
                                self.cache_dir / "uploads" / upload.sha256)


@dataclass(frozen=True)
class Published:
    version: str
    sha256: str
    size: int
    location: str
    card: dict


class SharedModels:
    """Model versions by SHA-256 in ``store``, the pointer in ``registry``'s database."""

    def __init__(self, registry: PostgresRegistry, store: ObjectStore) -> None:
        self.registry = registry
        self.store = store

    # --- writing ---------------------------------------------------------------------------
    def upload(self, model_dir: Path, version: str | None = None) -> Published:
        """Put the model in ``model_dir`` on the store (before any row names it).

        ``version``: the version the caller expects there (a mismatch raises ValueError)."""
        path = Path(model_dir) / MODEL_FILE
        card = json.loads((Path(model_dir) / CARD_FILE).read_text())
        if version is not None and str(card.get("model_version")) != version:
            raise ValueError(f"{MODEL_FILE} holds {card.get('model_version')}, not {version}")
        sha256 = sha256_of(path)
        location = self.store.put_file("models", sha256, path, ".joblib")
        return Published(str(card["model_version"]), sha256, path.stat().st_size, location,
                         card)

    @staticmethod
    def point(conn: psycopg.Connection, published: Published, *, only_if_empty: bool = False
              ) -> bool:
        """Record the version and move the pointer to it, inside the caller's transaction.
        ``only_if_empty``: only if no model is current yet (the first instance seeds it)."""
        conn.execute(
            "INSERT INTO model_versions (version, sha256, size, location, card, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO NOTHING",
            (published.version, published.sha256, published.size, published.location,
             Jsonb(published.card), str(published.card.get("created_at", ""))))
        if only_if_empty:
            cursor = conn.execute(
                "INSERT INTO model_pointer (id, version) VALUES (1, %s) "
                "ON CONFLICT (id) DO NOTHING", (published.version,))
            return cursor.rowcount == 1
        conn.execute(
            "INSERT INTO model_pointer (id, version, previous_version) VALUES (1, %(v)s, NULL) "
            "ON CONFLICT (id) DO UPDATE SET previous_version = model_pointer.version, "
            "version = %(v)s, changed_at = now()", {"v": published.version})
        return True

    def seed(self, model_dir: Path) -> bool:
        """Make the local model the shared one if none is yet; whether it became it."""
        if not (Path(model_dir) / MODEL_FILE).is_file() or self.current() is not None:
            return False
        published = self.upload(model_dir)
        with self.registry._transaction() as conn:
            return self.point(conn, published, only_if_empty=True)

    # --- reading ---------------------------------------------------------------------------
    def current(self) -> dict[str, Any] | None:
        """The pointer's version with its SHA-256, location and card (None: no model yet)."""
        rows = self.registry._rows(
            "SELECT v.version, v.sha256, v.location, v.card, v.created_at FROM model_pointer p "
            "JOIN model_versions v ON v.version = p.version WHERE p.id = 1")
        return rows[0] if rows else None

    def versions(self) -> list[dict[str, str]]:
        """Every version ever promoted, oldest first (as ``utils.retraining.list_versions``)."""
        return [{"version": row["version"], "created_at": row["created_at"]}
                for row in self.registry._rows(
                    "SELECT version, created_at FROM model_versions ORDER BY created_at, version")]

    def sync(self, model_dir: Path) -> str | None:
        """Bring ``model_dir`` to the pointer's model; the version synced now, or None when
        it already held it (or another process of this instance is syncing it)."""
        current = self.current()
        model_dir = Path(model_dir)
        if current is None or _in_sync(model_dir, current["sha256"]):
            return None
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / SYNC_LOCK, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # a sibling worker is on it
            if _in_sync(model_dir, current["sha256"]):
                return None
            staged = self.store.fetch(current["location"], current["sha256"],
                                      model_dir / ".incoming" / f"{current['sha256']}.joblib")
            atomic_write_bytes(model_dir / CARD_FILE, card_json(current["card"]))
            os.replace(staged, model_dir / MODEL_FILE)
            _write_mark(model_dir, current["sha256"])
        return str(current["version"])

    # --- rollback --------------------------------------------------------------------------
    def rollback(self, version: str | None = None, *, lock_wait: float = 2.0
                 ) -> tuple[str | None, str, list[str]]:
        """Point back at ``version`` (default: the one the current model replaced) and
        quarantine the uploads the current model learned from and it did not, in one
        transaction under the retrain lock. (previous version, new version, quarantined)."""
        from utils.retraining import RetrainError, trained_uploads

        lock = PostgresRetrainLock(self.registry.url)
        if not lock.acquire(wait=lock_wait):
            raise RetrainBusy("a retrain is in progress; roll back when it has finished")
        try:
            with self.registry._transaction() as conn:
                current = conn.execute(
                    "SELECT v.version, v.card, p.previous_version FROM model_pointer p JOIN "
                    "model_versions v ON v.version = p.version WHERE p.id = 1 FOR UPDATE"
                ).fetchone()
                target = self._target(conn, current, version)
                if current is not None and target["version"] == current["version"]:
                    raise RetrainError(f"{target['version']} is already the current model")
                quarantined: list[str] = []
                if current is not None:
                    learned = trained_uploads(current["card"]) - trained_uploads(target["card"])
                    quarantined = self.registry.quarantine(learned, conn)
                conn.execute(
                    "UPDATE model_pointer SET previous_version = version, version = %s, "
                    "changed_at = now() WHERE id = 1", (target["version"],))
        finally:
            lock.release()
        return (current["version"] if current else None, target["version"], quarantined)

    @staticmethod
    def _target(conn: psycopg.Connection, current: Mapping[str, Any] | None,
                version: str | None) -> dict[str, Any]:
        from utils.retraining import RetrainError, UnknownVersion

        if version is not None:
            row = conn.execute("SELECT version, card FROM model_versions WHERE version = %s",
                               (version,)).fetchone()
            if row is None:
                raise UnknownVersion(f"no archived model version {version!r}")
            return row
        replaced = None
        if current is not None:
            replaced = ((current["card"].get("retraining") or {}).get("previous_version")
                        or current["previous_version"])
        if replaced:
            row = conn.execute("SELECT version, card FROM model_versions WHERE version = %s",
                               (replaced,)).fetchone()
            if row is not None:
                return row
        if current is None:
            row = conn.execute("SELECT version, card FROM model_versions "
                               "ORDER BY created_at DESC, version DESC LIMIT 1").fetchone()
        else:
            row = conn.execute(
                "SELECT version, card FROM model_versions WHERE version != %s AND "
                "created_at <= %s ORDER BY created_at DESC, version DESC LIMIT 1",
                (current["version"], str(current["card"].get("created_at") or ""))).fetchone()
        if row is None:
            raise RetrainError("no earlier model version to roll back to")
        return row


class SharedStoreRegistry(PostgresRegistry):
    """The PostgreSQL registry whose promoted runs also move the shared model pointer.

    ``finish_run(..., "promoted", version=v)`` uploads the model the retrain just wrote to
    ``model_dir`` and moves the pointer in the transaction that closes the run, so a run is
    recorded as promoted exactly when every instance is told to serve its model.
    """

    def __init__(self, url: str, data_dir: Path | str, store: ObjectStore, model_dir: Path,
                 *, sync_first: bool = False, **options: Any) -> None:
        self.store = store
        self.model_dir = Path(model_dir)
        self.sync_first = sync_first
        super().__init__(url, data_dir,
                         files=StoreFiles(store, Path(data_dir) / "store-cache"), **options)
        self.models = SharedModels(self, store)

    # A retrain calls these first whenever it holds the lock: its working folder is brought
    # to the shared current model then (another instance may have promoted since).
    def interrupted_runs(self) -> list[dict[str, Any]]:
        if self.sync_first:
            self.models.sync(self.model_dir)
        return super().interrupted_runs()

    def take_request(self) -> bool:
        if self.sync_first:
            self.models.sync(self.model_dir)
        return super().take_request()

    def finish_run(self, run_id: int, outcome: str, reason: str, **kwargs: Any) -> None:
        published = None
        if outcome == "promoted" and kwargs.get("before_commit") is None:
            version = kwargs.get("version") or self._run_version(run_id)
            published = self.models.upload(self.model_dir, version)
            kwargs["before_commit"] = lambda conn: self.models.point(conn, published)
        super().finish_run(run_id, outcome, reason, **kwargs)
        if published is not None:
            with contextlib.suppress(OSError):  # this folder already holds it
                _write_mark(self.model_dir, published.sha256)

    def _run_version(self, run_id: int) -> str | None:
        rows = self._rows("SELECT version FROM retrain_runs WHERE id = %s", (run_id,))
        return rows[0]["version"] if rows else None


def _file_mark(model_dir: Path, sha256: str) -> str:
    """The pointer's SHA-256 with the model file's identity: any other write to the file
    (a retrain killed before its promotion committed) no longer matches."""
    st = os.stat(model_dir / MODEL_FILE)
    return f"{sha256} {st.st_ino} {st.st_mtime_ns} {st.st_size}"


def _write_mark(model_dir: Path, sha256: str) -> None:
    atomic_write_bytes(model_dir / POINTER_MARK, _file_mark(model_dir, sha256).encode())


def _in_sync(model_dir: Path, sha256: str) -> bool:
    try:
        return (model_dir / POINTER_MARK).read_text().strip() == _file_mark(model_dir, sha256)
    except OSError:
        return False


__all__ = ["Published", "RegistryUnavailable", "SharedModels", "SharedStoreRegistry",
           "StoreFiles"]
