"""Which engines hold the shared state: SQLite and the local disk by default, PostgreSQL (and an
S3-compatible object store) when their URLs are set. One place decides, for the API and the
scripts alike, so both always use the same registry, lock and model store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.upload_registry import RetrainLock, UploadRegistry


class BackendUnavailable(RuntimeError):
    """A shared backend (the database or the object store) did not answer; the caller
    degrades (an upload is scored but not kept) and the next call tries again."""

    reason = "backend_unavailable"  # the ``store_reason`` / ``error_type`` clients see


class BackendConfigError(ValueError):
    """The combination of backend settings cannot work (the message says which to set)."""


@dataclass
class Backends:
    """The registry (with its kept files), the retrain lock and the shared model store."""

    registry: Any  # UploadRegistry or PostgresRegistry (None: the API's sink opens SQLite)
    data_dir: Path
    model_dir: Path
    database_url: str | None = None
    store: Any = None  # utils.object_store.ObjectStore when kept files and models are shared
    models: Any = None  # utils.shared_store.SharedModels, with ``store``

    @property
    def shared(self) -> bool:
        return self.database_url is not None

    def retrain_lock(self) -> Any:
        """A new lock object: the flock of the data folder, or PostgreSQL's advisory lock."""
        if self.database_url is None:
            return RetrainLock(self.data_dir)
        from utils.pg_registry import PostgresRetrainLock

        return PostgresRetrainLock(self.database_url)

    def health(self) -> dict[str, Any]:
        """Which backends are in use and whether each answers now."""
        if self.database_url is None:
            registry = {"kind": "sqlite", "reachable": True}
        else:
            registry = {"kind": "postgresql", "reachable": self.registry.reachable()}
        if self.store is None:
            store = {"kind": "local", "reachable": True}
        else:
            store = {"kind": "s3", "bucket": self.store.bucket,
                     "reachable": self.store.reachable()}
        return {"registry": registry, "store": store}


def open_backends(data_dir: Path | str, model_dir: Path | str, *,
                  database_url: str | None = None, store_url: str | None = None,
                  pool_size: int = 4, timeout: float = 3.0, sqlite: bool = True,
                  work_dir: bool = False) -> Backends:
    """The backends the settings name; with a database URL the schema is created or upgraded
    now, or on first use if the database does not answer yet. ``sqlite`` False: no SQLite
    registry is opened (the API's upload sink opens its own, tolerating a full disk).

    ``work_dir`` (the retrain process): with a shared store the run works in a model folder of
    its own, ``<data_dir>/retrain-model``, brought to the shared current model whenever it
    takes the lock; the serving folder only ever changes by syncing from the pointer, so a run
    killed before its promotion committed is never served.
    """
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    if store_url and not database_url:
        raise BackendConfigError("ANOMALYZE_STORE_URL needs ANOMALYZE_DATABASE_URL: the "
                                 "current-model pointer and the upload registry live there")
    if not database_url:
        return Backends(UploadRegistry(data_dir) if sqlite else None, data_dir, model_dir)
    if not store_url:
        from utils.pg_registry import PostgresRegistry

        registry = PostgresRegistry(database_url, data_dir, pool_size=pool_size,
                                    timeout=timeout)
        return Backends(registry, data_dir, model_dir, database_url)
    from utils.object_store import ObjectStore
    from utils.shared_store import SharedStoreRegistry

    store = ObjectStore(store_url)
    if work_dir:
        model_dir = data_dir / "retrain-model"
    registry = SharedStoreRegistry(database_url, data_dir, store, model_dir,
                                   pool_size=pool_size, timeout=timeout, sync_first=work_dir)
    return Backends(registry, data_dir, model_dir, database_url, store, registry.models)
