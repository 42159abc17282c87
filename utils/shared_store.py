"""Model versions and kept uploads on the object store, the current-model pointers in PostgreSQL.

The service keeps one current model per input kind (utils.model_store.kinds), so the database
holds one pointer per kind and names each version by (kind, version). Every instance keeps its
own model folder, as on one machine, and mirrors the pointers into it: ``SharedModels.sync``
reads them (one small query), and for each kind whose pointer names a model that kind's folder
does not hold yet, downloads it, checks its SHA-256 and renames it into place; the API's model
holders then hot-swap it as they do any replaced ``model.joblib``. A promotion uploads the new
version first and moves its kind's pointer in one transaction (the retrain process: the one
that closes its run; a baseline: ``publish``); a rollback quarantines the uploads and moves
the pointer in one transaction. No instance ever serves a model a pointer did not name, and a
process killed before that transaction commits leaves the previous pointer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from utils.durable_files import atomic_write_bytes
from utils.model_store import (
    CARD_FILE,
    DEFAULT_KIND,
    KINDS,
    MODEL_FILE,
    VERSIONS_DIR,
    card_json,
    check_kind,
    kind_model_dir,
    list_versions,
)
from utils.object_store import ObjectStore, sha256_of
from utils.pg_lock import PostgresRetrainLock
from utils.pg_registry import PostgresRegistry
from utils.pg_schema import RegistryUnavailable
from utils.registry.interface import RetrainBusy, Upload

POINTER_MARK = ".pointer"  # in a model folder: which pointer model its model.joblib is
SYNC_LOCK = ".sync.lock"
# The kind the upload-fed retrain process trains: its rollbacks wait for the retrain lock.
# Other kinds' models come only from baselines, whose promotion is one pointer transaction.
RETRAINED_KIND = DEFAULT_KIND

_POINTERS = (
    "SELECT p.kind, v.version, v.sha256, v.location, v.card, v.created_at, "
    "p.previous_version, p.changed_at FROM model_pointer p "
    "JOIN model_versions v ON v.kind = p.kind AND v.version = p.version")


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
    kind: str = DEFAULT_KIND


def model_pointers(registry: PostgresRegistry) -> dict[str, dict[str, Any]]:
    """Each kind's current model (version, SHA-256, location, card, previous version, when
    the pointer last moved); a kind with no model yet is absent."""
    return {row["kind"]: row for row in registry._rows(_POINTERS)}


class SharedModels:
    """Model versions by SHA-256 in ``store``, one pointer per input kind in ``registry``'s
    database."""

    def __init__(self, registry: PostgresRegistry, store: ObjectStore) -> None:
        self.registry = registry
        self.store = store

    # --- writing ---------------------------------------------------------------------------
    def upload(self, model_dir: Path, version: str | None = None, *,
               kind: str = DEFAULT_KIND) -> Published:
        """Put the model in ``model_dir`` on the store (before any row names it).

        ``version``: the version the caller expects there; a mismatch, or a card of another
        input kind than ``kind`` (a card without one is KDD's), raises ValueError."""
        check_kind(kind)
        path = Path(model_dir) / MODEL_FILE
        card = json.loads((Path(model_dir) / CARD_FILE).read_text())
        if version is not None and str(card.get("model_version")) != version:
            raise ValueError(f"{MODEL_FILE} holds {card.get('model_version')}, not {version}")
        card_kind = card.get("input_kind") or DEFAULT_KIND
        if card_kind != kind:
            raise ValueError(f"{model_dir} holds a model for {card_kind} input, not {kind}")
        sha256 = sha256_of(path)
        location = self.store.put_file("models", sha256, path, ".joblib")
        return Published(str(card["model_version"]), sha256, path.stat().st_size, location,
                         card, kind)

    @staticmethod
    def record(conn: psycopg.Connection, published: Published) -> bool:
        """Record the version (kept once), inside the caller's transaction; whether it is new."""
        cursor = conn.execute(
            "INSERT INTO model_versions (kind, version, sha256, size, location, card, "
            "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (kind, version) DO NOTHING",
            (published.kind, published.version, published.sha256, published.size,
             published.location, Jsonb(published.card),
             str(published.card.get("created_at", ""))))
        return cursor.rowcount == 1

    @classmethod
    def point(cls, conn: psycopg.Connection, published: Published, *,
              only_if_empty: bool = False) -> bool:
        """Record the version and move its kind's pointer to it, inside the caller's
        transaction. ``only_if_empty``: only if that kind has no current model yet (the
        first instance seeds it)."""
        cls.record(conn, published)
        if only_if_empty:
            cursor = conn.execute(
                "INSERT INTO model_pointer (kind, version) VALUES (%s, %s) "
                "ON CONFLICT (kind) DO NOTHING", (published.kind, published.version))
            return cursor.rowcount == 1
        conn.execute(
            "INSERT INTO model_pointer (kind, version, previous_version) "
            "VALUES (%(k)s, %(v)s, NULL) ON CONFLICT (kind) DO UPDATE SET "
            "previous_version = model_pointer.version, version = %(v)s, changed_at = now()",
            {"k": published.kind, "v": published.version})
        return True

    def publish(self, model_dir: Path, kind: str) -> Published:
        """Make the model in ``model_dir`` (a folder of ``kind``'s layout) ``kind``'s current
        model on every instance: upload it, then record it and move the pointer in one
        transaction. Pass a working folder, not a serving one: instances take the model from
        the pointer (``sync``), so a process killed before the commit is never served."""
        published = self.upload(model_dir, kind=kind)
        with self.registry._transaction() as conn:
            self.point(conn, published)
        return published

    def seed(self, model_dir: Path) -> list[str]:
        """For each kind with no shared model yet, make the local one (its folder in
        ``model_dir``) the shared one; the kinds that became so."""
        pointers = self.pointers()
        seeded = []
        for kind in KINDS:
            folder = kind_model_dir(model_dir, kind)
            if kind in pointers or not (folder / MODEL_FILE).is_file():
                continue
            published = self.upload(folder, kind=kind)
            with self.registry._transaction() as conn:
                if self.point(conn, published, only_if_empty=True):
                    seeded.append(kind)
        return seeded

    def import_folder(self, model_dir: Path) -> dict[str, dict[str, Any]]:
        """Copy every kind's kept versions (``versions/<version>/`` of its folder in
        ``model_dir``) to the shared store, then seed the kinds with no shared model: what a
        move from one machine to several instances takes along. Per kind: how many versions
        were new and the current version afterwards."""
        imported: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            folder = kind_model_dir(model_dir, kind)
            new = 0
            for kept in list_versions(folder):
                published = self.upload(folder / VERSIONS_DIR / kept["version"],
                                        kept["version"], kind=kind)
                with self.registry._transaction() as conn:
                    new += self.record(conn, published)
            imported[kind] = {"versions": new}
        self.seed(model_dir)
        for kind, row in imported.items():
            current = self.current(kind)
            row["current"] = current["version"] if current else None
        return imported

    # --- reading ---------------------------------------------------------------------------
    def pointers(self) -> dict[str, dict[str, Any]]:
        """Every kind's current model (``model_pointers``)."""
        return model_pointers(self.registry)

    def current(self, kind: str = DEFAULT_KIND) -> dict[str, Any] | None:
        """``kind``'s pointer version with its SHA-256, location and card (None: no model
        of that kind yet)."""
        rows = self.registry._rows(f"{_POINTERS} WHERE p.kind = %s", (check_kind(kind),))
        return rows[0] if rows else None

    def versions(self, kind: str = DEFAULT_KIND) -> list[dict[str, str]]:
        """Every version of ``kind`` ever promoted, oldest first (as
        ``utils.retraining.list_versions``)."""
        return [{"version": row["version"], "created_at": row["created_at"]}
                for row in self.registry._rows(
                    "SELECT version, created_at FROM model_versions WHERE kind = %s "
                    "ORDER BY created_at, version", (check_kind(kind),))]

    def sync(self, model_dir: Path, kinds: Iterable[str] = KINDS) -> dict[str, str]:
        """Bring each kind's folder in ``model_dir`` to that kind's pointer model; the kinds
        synced now with their versions (empty: every folder already held its model, or
        another process of this instance is syncing it). A kind whose download fails does not
        hold back the others; the first failure is raised once they are done."""
        pointers = self.pointers()
        synced: dict[str, str] = {}
        failure: Exception | None = None
        for kind in kinds:
            current = pointers.get(check_kind(kind))
            if current is None:
                continue
            try:
                if _sync_folder(self.store, kind_model_dir(model_dir, kind), current):
                    synced[kind] = str(current["version"])
            except Exception as exc:  # raised below, once the other kinds had their turn
                failure = failure or exc
        if failure is not None:
            raise failure
        return synced

    # --- rollback --------------------------------------------------------------------------
    def rollback(self, version: str | None = None, kind: str = DEFAULT_KIND, *,
                 lock_wait: float = 2.0) -> tuple[str | None, str, list[str]]:
        """Point ``kind`` back at ``version`` (default: the one its current model replaced)
        and quarantine the uploads the current model learned from and it did not, in one
        transaction; the other kinds' pointers stay. The retrained kind's rollback waits for
        the retrain lock, so it never races a promotion. (previous version, new version,
        quarantined)."""
        from utils.retraining import RetrainError, trained_uploads

        check_kind(kind)
        lock = PostgresRetrainLock(self.registry.url) if kind == RETRAINED_KIND else None
        if lock is not None and not lock.acquire(wait=lock_wait):
            raise RetrainBusy("a retrain is in progress; roll back when it has finished")
        try:
            with self.registry._transaction() as conn:
                current = conn.execute(
                    "SELECT v.version, v.card, p.previous_version FROM model_pointer p "
                    "JOIN model_versions v ON v.kind = p.kind AND v.version = p.version "
                    "WHERE p.kind = %s FOR UPDATE", (kind,)).fetchone()
                target = self._target(conn, kind, current, version)
                if current is not None and target["version"] == current["version"]:
                    raise RetrainError(f"{target['version']} is already the current model")
                quarantined: list[str] = []
                if current is not None:
                    learned = trained_uploads(current["card"]) - trained_uploads(target["card"])
                    quarantined = self.registry.quarantine(learned, conn)
                conn.execute(
                    "INSERT INTO model_pointer (kind, version) VALUES (%(k)s, %(v)s) "
                    "ON CONFLICT (kind) DO UPDATE SET previous_version = model_pointer.version,"
                    " version = %(v)s, changed_at = now()",
                    {"k": kind, "v": target["version"]})
        finally:
            if lock is not None:
                lock.release()
        return (current["version"] if current else None, target["version"], quarantined)

    @staticmethod
    def _target(conn: psycopg.Connection, kind: str, current: Mapping[str, Any] | None,
                version: str | None) -> dict[str, Any]:
        from utils.retraining import RetrainError, UnknownVersion

        def version_row(name: str) -> dict[str, Any] | None:
            return conn.execute("SELECT version, card FROM model_versions "
                                "WHERE kind = %s AND version = %s", (kind, name)).fetchone()

        if version is not None:
            row = version_row(version)
            if row is None:
                raise UnknownVersion(f"no archived {kind} model version {version!r}")
            return row
        replaced = None
        if current is not None:
            replaced = ((current["card"].get("retraining") or {}).get("previous_version")
                        or current["previous_version"])
        if replaced and (row := version_row(replaced)) is not None:
            return row
        if current is None:
            row = conn.execute("SELECT version, card FROM model_versions WHERE kind = %s "
                               "ORDER BY created_at DESC, version DESC LIMIT 1",
                               (kind,)).fetchone()
        else:
            row = conn.execute(
                "SELECT version, card FROM model_versions WHERE kind = %s AND version != %s "
                "AND created_at <= %s ORDER BY created_at DESC, version DESC LIMIT 1",
                (kind, current["version"], str(current["card"].get("created_at") or ""))
            ).fetchone()
        if row is None:
            raise RetrainError(f"no earlier {kind} model version to roll back to")
        return row


class SharedStoreRegistry(PostgresRegistry):
    """The PostgreSQL registry whose promoted runs also move the retrained kind's pointer.

    ``finish_run(..., "promoted", version=v)`` uploads the model the retrain just wrote to
    ``model_dir`` (the KDD folder, ``RETRAINED_KIND``) and moves that kind's pointer in the
    transaction that closes the run, so a run is recorded as promoted exactly when every
    instance is told to serve its model.
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
    # to the shared current model then (another instance may have promoted since). It only
    # ever trains the retrained kind, so no other kind's model is fetched into it.
    def interrupted_runs(self) -> list[dict[str, Any]]:
        if self.sync_first:
            self.models.sync(self.model_dir, (RETRAINED_KIND,))
        return super().interrupted_runs()

    def take_request(self) -> bool:
        if self.sync_first:
            self.models.sync(self.model_dir, (RETRAINED_KIND,))
        return super().take_request()

    def finish_run(self, run_id: int, outcome: str, reason: str, **kwargs: Any) -> None:
        published = None
        if outcome == "promoted" and kwargs.get("before_commit") is None:
            version = kwargs.get("version") or self._run_version(run_id)
            published = self.models.upload(self.model_dir, version, kind=RETRAINED_KIND)
            kwargs["before_commit"] = lambda conn: self.models.point(conn, published)
        super().finish_run(run_id, outcome, reason, **kwargs)
        if published is not None:
            with contextlib.suppress(OSError):  # this folder already holds it
                _write_mark(self.model_dir, published.sha256)

    def _run_version(self, run_id: int) -> str | None:
        rows = self._rows("SELECT version FROM retrain_runs WHERE id = %s", (run_id,))
        return rows[0]["version"] if rows else None


def _sync_folder(store: ObjectStore, model_dir: Path, current: Mapping[str, Any]) -> bool:
    """Bring one kind's folder to ``current`` (its pointer row); whether it changed now
    (False: it already held it, or a sibling worker of this instance is on it)."""
    if _in_sync(model_dir, current["sha256"]):
        return False
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / SYNC_LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if _in_sync(model_dir, current["sha256"]):
            return False
        staged = store.fetch(current["location"], current["sha256"],
                             model_dir / ".incoming" / f"{current['sha256']}.joblib")
        atomic_write_bytes(model_dir / CARD_FILE, card_json(current["card"]))
        os.replace(staged, model_dir / MODEL_FILE)
        _write_mark(model_dir, current["sha256"])
    return True


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


__all__ = ["RETRAINED_KIND", "Published", "RegistryUnavailable", "SharedModels",
           "SharedStoreRegistry", "StoreFiles", "model_pointers"]
