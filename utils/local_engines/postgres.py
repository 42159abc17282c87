"""A throwaway PostgreSQL server (Debian's package) for tests and benchmarks."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

from utils.local_engines.processes import (
    Engine,
    EngineUnavailable,
    kill,
    log_tail,
    spawn,
    stop_process,
    wait_until,
)
from utils.local_server import HOST, ServerStartError, free_port

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


class PostgresServer(Engine):
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
        self.process = spawn([
            str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.root}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "logging_collector=off",
        ], log_path=self.log_path, cwd=self.root, user=self.user,
            # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends.
            parent_death_signal="QUIT")
        wait_until(self._accepts_connections, process=self.process, what="postgres",
                    log_path=self.log_path, timeout=self.start_timeout)
        if first_start:
            self.create_database(self.database)
        return self

    def _initdb(self) -> None:
        args = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                "--no-instructions"]
        process = spawn(args, log_path=self.log_path, cwd=self.root, user=self.user)
        try:
            code = process.wait(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            kill(process)
        if code != 0:
            raise ServerStartError(f"initdb failed ({code}):\n{log_tail(self.log_path)}")

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
        stop_process(self.process, signal.SIGINT, timeout)
