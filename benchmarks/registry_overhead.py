"""What keeping one upload costs the request: registry ``register`` timed on small new uploads.

    python -m benchmarks.registry_overhead            # 200 uploads, 4 threads at once too
    python -m benchmarks.registry_overhead -n 500

Each upload is a distinct ~2 KB temp file (the spool file the API would hand over), kept
under the API's quota and counted towards a retrain every 10. The figure is the wall time of
``register`` alone, p50 and p90 in milliseconds, first from one thread, then from several at
once (gunicorn's threads share one registry per process).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import threading
import time
from pathlib import Path

from settings import script_settings
from utils.registry import open_registry
from utils.registry.interface import UploadQuota

QUOTA = UploadQuota(total_bytes=1 << 40, client_bytes=1 << 40, client_window_seconds=86400)


def _one(registry, folder: Path, i: int) -> float:
    content = f"upload {i}\n".encode() * 200
    path = folder / f"spool-{i}"
    path.write_bytes(content)
    started = time.perf_counter()
    registry.register(path, sha256=hashlib.sha256(content).hexdigest(),
                      original_name=f"u{i}.txt", rows=200, has_labels=False,
                      input_kind="kdd", threshold=10, client="127.0.0.1",
                      quota=QUOTA)
    return (time.perf_counter() - started) * 1000


def measure(n: int, threads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        registry = open_registry(folder / "data")
        _one(registry, folder, -1)  # schema and first connection
        serial = [_one(registry, folder, i) for i in range(n)]
        parallel: list[float] = []

        def worker(offset: int) -> None:
            for i in range(offset, n * 2, threads):
                parallel.append(_one(registry, folder, n + i))

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return {
        "uploads": n,
        "p50_ms": statistics.median(serial),
        "p90_ms": statistics.quantiles(serial, n=10)[-1],
        f"p50_ms_{threads}_threads": statistics.median(parallel),
    }


def main(argv: list[str] | None = None) -> None:
    script_settings()  # reads none of them, but a refused value still stops every script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="uploads to register (default 200)")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    for key, value in measure(args.n, args.threads).items():
        print(f"{key:>18}: {value:.2f}" if isinstance(value, float) else f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
