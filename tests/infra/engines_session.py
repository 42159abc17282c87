"""Run by test_real_servers.py in a child pytest, never collected on its own: starts every
engine through the session fixtures, records their pids, then fails (or hangs, to be
killed), so the parent can check that no server process is left afterwards."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil


def _tree(pid: int) -> list[int]:
    process = psutil.Process(pid)
    return [pid, *(child.pid for child in process.children(recursive=True))]


def test_start_every_engine_then_fail(postgres_server, s3_server, dask_cluster):
    pids = {
        "postgres": _tree(postgres_server.pid),
        "s3": _tree(s3_server.pid),
        "dask": [dask_cluster.pid, *(dask_cluster.worker_pid(i)
                                     for i in range(dask_cluster.n_workers))],
    }
    roots = [str(engine.root) for engine in (postgres_server, s3_server, dask_cluster)]
    target = Path(os.environ["ENGINES_PIDS_FILE"])
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps({"pids": pids, "roots": roots}))
    partial.rename(target)
    if os.environ.get("ENGINES_HANG"):
        time.sleep(600)
    raise AssertionError("this session fails on purpose")
