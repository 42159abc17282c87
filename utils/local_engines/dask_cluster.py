"""A Dask scheduler and its worker processes on 127.0.0.1, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from utils.local_engines.processes import (
    Engine,
    kill,
    log_tail,
    port_open,
    spawn,
    stop_process,
    wait_until,
)
from utils.local_server import HOST, REPO_ROOT, ServerStartError, free_port


class DaskCluster(Engine):
    """``dask scheduler`` and ``n_workers`` separate ``dask worker`` processes on 127.0.0.1,
    each worker one thread and no nanny, so a test can SIGKILL one by pid and watch the
    scheduler reschedule its tasks (a nanny would restart it). Workers run from the
    repository with BLAS at one thread and give up 30 s after losing their scheduler.

    The other route, for code rather than tests of the cluster itself, is
    ``distributed.LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``: the same
    scheduler and workers, started and owned by the client process.
    """

    def __init__(self, n_workers: int = 2, *, nthreads: int = 1, memory_limit: str = "2GiB",
                 start_timeout: float = 90.0) -> None:
        super().__init__("anomalyze-dask-")
        self.n_workers = n_workers
        self.nthreads = nthreads
        self.memory_limit = memory_limit
        self.start_timeout = start_timeout
        self.port = free_port()
        self.address = f"tcp://{HOST}:{self.port}"
        self.workers: list[subprocess.Popen | None] = [None] * n_workers
        inherited = dict(os.environ)
        python_path = [str(REPO_ROOT), *filter(None, [inherited.get("PYTHONPATH")])]
        self.env = {**inherited, "PYTHONPATH": os.pathsep.join(python_path),
                    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1"}

    def worker_name(self, index: int) -> str:
        return f"worker-{index}"

    def worker_log(self, index: int) -> Path:
        return self.root / f"{self.worker_name(index)}.log"

    def worker_pid(self, index: int) -> int | None:
        worker = self.workers[index]
        return worker.pid if worker is not None and worker.poll() is None else None

    def start(self) -> DaskCluster:
        """Start the scheduler if it is down and every worker that is not running; return
        once the scheduler sees them all."""
        if self.pid is None:
            self.process = spawn([
                sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", HOST,
                "--port", str(self.port), "--no-dashboard",
            ], log_path=self.log_path, cwd=REPO_ROOT, env=self.env)
            wait_until(lambda: port_open(self.port), process=self.process,
                        what="dask scheduler", log_path=self.log_path,
                        timeout=self.start_timeout)
        for index in range(self.n_workers):
            if self.worker_pid(index) is None:
                self._start_worker(index)
        self.wait_for_workers(self.n_workers)
        return self

    def _start_worker(self, index: int) -> None:
        worker_dir = self.root / self.worker_name(index)
        worker_dir.mkdir(exist_ok=True)
        self.workers[index] = spawn([
            sys.executable, "-m", "distributed.cli.dask_worker", self.address,
            "--name", self.worker_name(index), "--host", HOST,
            "--nthreads", str(self.nthreads), "--no-nanny", "--no-dashboard",
            "--memory-limit", self.memory_limit, "--local-directory", str(worker_dir),
            "--death-timeout", "30",
        ], log_path=self.worker_log(index), cwd=REPO_ROOT, env=self.env)

    def wait_for_workers(self, n: int) -> None:
        """Return once the scheduler has ``n`` workers; a worker that exits fails fast."""
        from distributed import Client

        deadline = time.monotonic() + self.start_timeout
        with Client(self.address, timeout=self.start_timeout) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
                for index, worker in enumerate(self.workers):
                    if worker is not None and worker.poll() is not None:
                        raise ServerStartError(
                            f"{self.worker_name(index)} exited with {worker.returncode}:\n"
                            f"{log_tail(self.worker_log(index))}")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"dask: fewer than {n} workers after "
                                           f"{self.start_timeout:g} s:\n"
                                           f"{log_tail(self.log_path)}")
                time.sleep(0.2)

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker ``index`` by pid, as a crash or the OOM killer would."""
        worker = self.workers[index]
        if worker is not None:
            kill(worker)

    def stop(self, timeout: float = 30.0) -> None:
        """Workers first (SIGTERM: they leave the scheduler cleanly), then the scheduler."""
        for worker in self.workers:
            if worker is not None and worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.terminate()
        for worker in self.workers:
            stop_process(worker, signal.SIGTERM, timeout)
        stop_process(self.process, signal.SIGTERM, timeout)
