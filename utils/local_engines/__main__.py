"""``python -m utils.local_engines``: start, use, stop, restart and close each engine once,
with the time each step took and the memory it held."""

from __future__ import annotations

import os
import time

from settings import script_settings
from utils.local_engines.dask_cluster import DaskCluster
from utils.local_engines.postgres import PostgresServer
from utils.local_engines.processes import Engine
from utils.local_engines.s3 import S3Server


def _tree_rss_mib(pid: int) -> float:
    import psutil  # a dependency of distributed

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def _exercise(engine: Engine) -> str:
    """One real round trip through the engine's client; what it held in memory after."""
    if isinstance(engine, S3Server):
        s3 = engine.client()
        s3.create_bucket(Bucket="check")
        s3.put_object(Bucket="check", Key="object", Body=os.urandom(5 << 20))
    elif isinstance(engine, DaskCluster):
        import dask.dataframe as dd
        import pandas as pd
        from distributed import Client

        with Client(engine.address, timeout=60) as client:
            frame = dd.from_pandas(pd.DataFrame({"x": range(1000)}), npartitions=4)
            client.compute(frame.map_partitions(len)).result(timeout=120)
        pids = [engine.pid] + [engine.worker_pid(i) for i in range(engine.n_workers)]
        return ", ".join(f"{_tree_rss_mib(pid):.0f}" for pid in pids) + " MiB"
    return f"{_tree_rss_mib(engine.pid):.0f} MiB"


def main() -> None:
    """``python -m utils.local_engines``: start, use, stop, restart and close each engine
    once, with the time each step took and the memory it held (a check that this machine
    has everything, and the figures in docs/TESTING.md)."""
    bindir = script_settings()["PG_BINDIR"]
    print(f"load average {os.getloadavg()[0]:.1f}")
    for make in (lambda: PostgresServer(bindir=bindir), S3Server, DaskCluster):
        steps, began = {}, time.monotonic()
        engine = make()
        try:
            engine.start()
            steps["start"] = time.monotonic() - began
            rss = _exercise(engine)
            for step in ("stop", "start", "close"):
                began = time.monotonic()
                getattr(engine, step)()
                steps["re" + step if step == "start" else step] = time.monotonic() - began
        finally:
            engine.close()
        timings = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps.items())
        print(f"{type(engine).__name__}: {timings}; RSS {rss}")


if __name__ == "__main__":
    main()
