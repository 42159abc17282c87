"""What keeping an upload costs per request on each registry backend (the ``registry`` section).

Times ``register()`` (the call the API makes after scoring an upload: keep-once, the quota,
the counter) for 200 small unique uploads, one after another, on SQLite in a temp folder, on
PostgreSQL with the files in the data folder, and on PostgreSQL with the files on S3
(SeaweedFS). The servers are real and local (utils/local_engines.py, on 127.0.0.1), so the
figures leave out network latency to a managed database; they show the engines' own cost.
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

N_UPLOADS = 200
QUOTA = dict(total_bytes=1 << 30, client_bytes=256 << 20, client_window_seconds=86400.0)


def _time_registrations(registry: Any, folder: Path, n: int = N_UPLOADS) -> list[float]:
    from utils.registry.interface import UploadQuota

    quota = UploadQuota(**QUOTA)
    incoming = folder / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    times = []
    for i in range(n):
        data = f"0,tcp,http,SF,{i},0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,1,1,0,0,0,0,1,0,0,1,1,1," \
               f"0,0,0,0,0,0,0,normal,21\n".encode()
        path = incoming / f"{i}.part"
        path.write_bytes(data)
        began = time.perf_counter()
        result = registry.register(path, sha256=hashlib.sha256(data).hexdigest(),
                                   original_name="bench.txt", rows=1, has_labels=True,
                                   input_kind="kdd", threshold=0, client="127.0.0.1",
                                   quota=quota)
        times.append(time.perf_counter() - began)
        assert result.stored, result
        path.unlink(missing_ok=True)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"n": len(times), "p50_ms": statistics.median(ordered) * 1000,
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
            "mean_ms": statistics.fmean(ordered) * 1000}


def run_registry(progress: Callable[[str], None], pg_bindir: Path | None = None
                 ) -> dict[str, Any]:
    """p50/p90/mean of ``register()`` per backend; skipped (with why) if an engine is missing."""
    from utils.local_engines import EngineUnavailable, PostgresServer, S3Server
    from utils.upload_registry import UploadRegistry

    results: dict[str, Any] = {"uploads": N_UPLOADS, "backends": {}}
    root = Path(tempfile.mkdtemp(prefix="anomalyze-registry-bench-"))
    try:
        results["backends"]["sqlite"] = _summary(
            _time_registrations(UploadRegistry(root / "sqlite"), root / "sqlite"))
        progress(f"registry: sqlite p50 {results['backends']['sqlite']['p50_ms']:.2f} ms")
        try:
            postgres, s3 = PostgresServer(bindir=pg_bindir), S3Server()
        except EngineUnavailable as exc:
            results["skipped"] = str(exc)
            return results
        with postgres, s3:
            from utils.object_store import ObjectStore
            from utils.pg_registry import PostgresRegistry
            from utils.shared_store import StoreFiles

            registry = PostgresRegistry(postgres.create_database("bench_local"), root / "pg")
            results["backends"]["postgresql"] = _summary(
                _time_registrations(registry, root / "pg"))
            registry.close()
            progress(f"registry: postgresql p50 "
                     f"{results['backends']['postgresql']['p50_ms']:.2f} ms")
            store = ObjectStore("s3://bench/anomalyze", client_options={
                "endpoint_url": s3.endpoint_url, "region_name": s3.region,
                "aws_access_key_id": s3.access_key, "aws_secret_access_key": s3.secret_key})
            registry = PostgresRegistry(postgres.create_database("bench_s3"), root / "pgs3",
                                        files=StoreFiles(store, root / "cache"))
            results["backends"]["postgresql+s3"] = _summary(
                _time_registrations(registry, root / "pgs3"))
            registry.close()
            progress(f"registry: postgresql+s3 p50 "
                     f"{results['backends']['postgresql+s3']['p50_ms']:.2f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results
