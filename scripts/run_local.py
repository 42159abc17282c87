#!/usr/bin/env python3
"""Run the ML API and the web frontend on this machine, the way `make run` does.

Both run under gunicorn from this interpreter's environment (`sys.executable -m gunicorn`),
each in its own session so that Ctrl-C reaches only this script, which then stops both in
order. If either dies, the other is stopped too and the exit code is non-zero.

Settings (settings/table.py, docs/CONFIG.md): API_PORT (default 5000), FRONTEND_PORT (default
8000), RUN_LOCAL_READY_TIMEOUT (seconds to wait for both to answer, default 120).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file, this folder comes first: settings/ is in ROOT

from settings import script_settings  # noqa: E402

HOST = "127.0.0.1"
POLL_INTERVAL = 0.5
STOP_GRACE = 10.0


@dataclass
class Service:
    name: str
    args: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None


class Shutdown(Exception):
    """SIGTERM arrived; handled like Ctrl-C."""


def build_services(api_port: int, frontend_port: int,
                   environ: Mapping[str, str] | None = None,
                   python: str = sys.executable) -> list[Service]:
    """The ML API and the frontend, the frontend pointed at this API."""
    environ = dict(os.environ if environ is None else environ)
    api_url = f"http://{HOST}:{api_port}"
    return [
        Service("ML API",
                [python, "-m", "gunicorn", "api_server:app", "-c", "gunicorn.conf.py",
                 "-b", f"{HOST}:{api_port}"],
                f"{api_url}/health", environ),
        Service("frontend",
                [python, "-m", "gunicorn", "api.index:app", "-b", f"{HOST}:{frontend_port}",
                 "-c", "gunicorn_frontend.conf.py"],
                f"http://{HOST}:{frontend_port}/health",
                {**environ, "ANOMALYZE_API_URL": api_url}),
    ]


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at `url`; any status counts (503 = up, no model yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def start(service: Service) -> None:
    service.process = subprocess.Popen(service.args, cwd=ROOT, env=service.env,
                                       start_new_session=True)
    print(f"started {service.name} (pid {service.process.pid}): {' '.join(service.args)}",
          flush=True)


def first_exited(services: list[Service]) -> Service | None:
    return next((s for s in services if s.process and s.process.poll() is not None), None)


def wait_until_ready(services: list[Service], timeout: float,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> Service | None:
    """None once every service answers, or the first one that exited meanwhile."""
    deadline = clock() + timeout
    waiting = list(services)
    while waiting:
        dead = first_exited(services)
        if dead:
            return dead
        waiting = [s for s in waiting if not answers(s.health_url)]
        if waiting and clock() > deadline:
            names = ", ".join(s.name for s in waiting)
            raise TimeoutError(f"{names} did not answer within {timeout:g} seconds")
        if waiting:
            sleep(POLL_INTERVAL)
    return None


def watch(services: list[Service], sleep: Callable[[float], None] = time.sleep) -> Service:
    """Block until one of the services exits, and return it."""
    while True:
        dead = first_exited(services)
        if dead:
            return dead
        sleep(POLL_INTERVAL)


def stop_all(services: list[Service], grace: float = STOP_GRACE) -> None:
    """SIGTERM (gunicorn's graceful stop) to every running service, SIGKILL after `grace`."""
    running = [s.process for s in services if s.process and s.process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(services: list[Service], ready_timeout: float, open_url: str) -> int:
    """Start, wait until ready, supervise; 0 after Ctrl-C / SIGTERM, 1 if a service failed."""

    def _on_sigterm(_signum, _frame):
        raise Shutdown

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for service in services:
            start(service)
        dead = wait_until_ready(services, ready_timeout)
        if dead is None:
            print(f"\nAnomalyze is running: open {open_url}  (Ctrl-C to stop)\n", flush=True)
            dead = watch(services)
        print(f"{dead.name} exited with code {dead.process.returncode}; stopping the rest.",
              file=sys.stderr, flush=True)
        return 1
    except TimeoutError as error:
        print(f"{error}; stopping.", file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, Shutdown):
        print("\nstopping…", flush=True)
        return 0
    finally:
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(services)
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    config = script_settings()
    api_port, frontend_port = config["API_PORT"], config["FRONTEND_PORT"]
    ready_timeout = config["RUN_LOCAL_READY_TIMEOUT"]
    services = build_services(api_port, frontend_port)
    return run(services, ready_timeout, f"http://{HOST}:{frontend_port}/")


if __name__ == "__main__":
    sys.exit(main())
