"""scripts/run_local.py: both services from this interpreter, no shell, and when one stops
the other is stopped too."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_LOCAL = ROOT / "scripts" / "run_local.py"


def load_run_local():
    spec = importlib.util.spec_from_file_location("run_local", RUN_LOCAL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_services_are_gunicorn_from_this_interpreter_bound_to_localhost():
    run_local = load_run_local()
    api, frontend = run_local.build_services(5123, 8123, environ={"X": "1"})
    assert api.args[:3] == [sys.executable, "-m", "gunicorn"]
    assert api.args[3:] == ["api_server:app", "-c", "gunicorn.conf.py", "-b", "127.0.0.1:5123"]
    assert frontend.args[:5] == [sys.executable, "-m", "gunicorn", "api.index:app", "-b"]
    assert frontend.args[5] == "127.0.0.1:8123"
    assert frontend.env["ANOMALYZE_API_URL"] == "http://127.0.0.1:5123"
    assert api.env["X"] == "1"
    assert api.health_url == "http://127.0.0.1:5123/health"


def test_when_one_service_dies_the_other_is_stopped_and_the_exit_is_non_zero():
    run_local = load_run_local()
    closed = f"http://127.0.0.1:{free_port()}/health"
    services = [
        run_local.Service("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"], closed,
                          dict(os.environ)),
        run_local.Service("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"],
                          closed, dict(os.environ)),
    ]
    assert run_local.run(services, ready_timeout=120, open_url="unused") == 1
    assert services[0].process.returncode == 3
    assert services[1].process.returncode is not None  # stopped, and reaped


@pytest.mark.e2e
def test_sigterm_stops_both_services_cleanly(tmp_path):
    driver = tmp_path / "drive.py"
    driver.write_text(
        "import importlib.util, os, sys\n"
        "spec = importlib.util.spec_from_file_location('run_local', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['run_local'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "services = [mod.Service(f's{p}', [sys.executable, '-m', 'http.server', p,\n"
        "            '--bind', '127.0.0.1'], f'http://127.0.0.1:{p}/health', dict(os.environ))\n"
        "            for p in sys.argv[2:]]\n"
        "sys.exit(mod.run(services, 60, 'http://127.0.0.1/'))\n")
    ports = [str(free_port()), str(free_port())]
    process = subprocess.Popen([sys.executable, str(driver), str(RUN_LOCAL), *ports],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pids = []
    try:
        for line in process.stdout:
            if line.startswith("started "):
                pids.append(int(line.split("(pid ")[1].split(")")[0]))
            if "Anomalyze is running" in line:
                break
        assert len(pids) == 2, "run_local did not report both services as running"
        assert all(is_alive(pid) for pid in pids)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not any(is_alive(pid) for pid in pids)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
