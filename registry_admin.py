"""Operator commands for the shared PostgreSQL registry (docs/CONFIG.md, "Several instances").

    python registry_admin.py upgrade                   create or upgrade the schema
    python registry_admin.py status                    schema version, uploads, runs, and the
                                                       current model of each input kind
    python registry_admin.py import-sqlite [--data-dir data] [--model-dir models]
                                                       move a one-machine registry in (once)

The database is ``ANOMALYZE_DATABASE_URL`` (or ``--database-url``); with
``ANOMALYZE_STORE_URL`` set, ``import-sqlite`` also uploads the kept files to the object store,
and every input kind's kept model versions (``versions/`` of its folder in the model folder),
making each kind's local model the shared one where there is none yet.
The API upgrades the schema itself when it starts; ``upgrade`` is for doing it beforehand (a
deployment step). Both take the same advisory lock, so running them together is safe.

Exit codes: 0 done, 1 refused or failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from pathlib import Path

from settings import parsers, script_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("command", choices=("upgrade", "status", "import-sqlite"))
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL (default: $ANOMALYZE_DATABASE_URL)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder of the SQLite registry to import "
                        "(default: $ANOMALYZE_DATA_DIR or data/)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="model folder whose versions import-sqlite uploads with a store "
                        "(default: $ANOMALYZE_MODEL_DIR or models/)")
    return parser.parse_args(argv)


def describe_pointer(row: dict | None) -> str:
    """One kind's current model for ``status``: its version, since when, and the one before."""
    if row is None:
        return "none"
    since = row["changed_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{row['version']} (since {since}; before it {row['previous_version'] or 'none'})"


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    args = parse_args(argv)
    url = args.database_url or config["DATABASE_URL"]
    if not url:
        print("error: set ANOMALYZE_DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    try:
        parsers.postgres_url(url)
    except ValueError:
        print("error: the database URL must be a postgresql:// URL", file=sys.stderr)
        return 2

    from utils.backend_errors import BackendUnavailable
    from utils.pg_registry import PostgresRegistry
    from utils.pg_schema import SchemaTooNew, connect, schema_version, upgrade

    try:
        if args.command == "upgrade":
            before, after = upgrade(url)
            print(f"schema version {before} -> {after}" if before != after
                  else f"schema already at version {after}")
            return 0
        registry = PostgresRegistry(url, args.data_dir or config["DATA_DIR"])
        if args.command == "status":
            from utils.model_store import KINDS
            from utils.shared_store import model_pointers

            with connect(url) as conn:
                print(f"schema version: {schema_version(conn)}")
            print(f"uploads: {registry.counts()}")
            print(f"counter and queue: {registry.state()}")
            print(f"runs: {registry.run_count()}; running: {registry.running_run() is not None}")
            pointers = model_pointers(registry)
            for kind in KINDS:
                print(f"model {kind}: {describe_pointer(pointers.get(kind))}")
            return 0
        from utils.object_store import ObjectStore
        from utils.sqlite_import import ImportRefused, import_sqlite

        store = ObjectStore(config["STORE_URL"]) if config["STORE_URL"] else None
        try:
            copied = import_sqlite(args.data_dir or config["DATA_DIR"], registry, store)
        except ImportRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"imported {copied['uploads']} upload(s) and {copied['runs']} run(s); counter "
              f"{copied['uploads_since_retrain']}, queued requests {copied['requests']}")
        if store is not None:
            from utils.shared_store import SharedModels

            models = SharedModels(registry, store)
            for kind, done in models.import_folder(args.model_dir or config["MODEL_DIR"]).items():
                print(f"model {kind}: {done['versions']} version(s) uploaded; current "
                      f"{done['current'] or 'none'}")
        return 0
    except (BackendUnavailable, SchemaTooNew) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # psycopg errors: say what failed, without a traceback
        if type(exc).__module__.startswith("psycopg"):
            print(f"error: PostgreSQL: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
