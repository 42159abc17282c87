"""Slow clients against the real servers on 127.0.0.1: the ML API (gunicorn.conf.py) and the web
frontend as `make run` starts it (scripts/run_local.py), each with its default workers and
threads and with short client time limits so that the test stays short.

Twenty clients trickle one byte a second (ten slowloris heads that never end, ten uploads whose
body never ends), reconnecting whenever they are cut off. Asserted: meanwhile every ordinary
request answers within 2 s; the slow clients get a JSON 408 (head or body too slow) and their
connection closed, in about the configured time; a connection that sends nothing is closed.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.raw_http import read_http_response
from tests.helpers.repo import REPO_ROOT
from tests.helpers.servers import Gunicorn
from utils.local_server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOST = "127.0.0.1"
READ_TIMEOUT, HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 4.0, 6.0
LIMITS = {"ANOMALYZE_CLIENT_READ_TIMEOUT": str(READ_TIMEOUT),
          "ANOMALYZE_CLIENT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
          "ANOMALYZE_CLIENT_BODY_TIMEOUT": str(BODY_TIMEOUT)}
SLOW_HEADS = SLOW_BODIES = 10
TRICKLE_INTERVAL = 1.0  # one byte a second
ATTACK_SECONDS = 10.0  # longer than the body limit: the slow clients are cut off and come back
ANSWER_WITHIN = 2.0  # seconds, for an ordinary request while the attack goes on
ORDINARY_TIMEOUT = (5, 10)  # connect, read: a starved server fails the test in bounded time
SLACK = 3.0  # seconds past a limit before a cut-off counts as late (loaded, shared machine)

MULTIPART_BOUNDARY = "slow-client-boundary"


def figure(text: str, capsys) -> None:
    with capsys.disabled():
        print(f"\n[slow clients] {text}")


# -- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(model_dir, tmp_path_factory) -> Iterator[Gunicorn]:
    root = tmp_path_factory.mktemp("slow-clients-api")
    shutil.copytree(model_dir, root / "model")
    server = Gunicorn(root, {"ANOMALYZE_MODEL_DIR": str(root / "model"),
                             "ANOMALYZE_DATA_DIR": str(root / "data"),
                             "GUNICORN_THREADS": "",  # gunicorn.conf.py's default
                             **LIMITS})
    try:
        yield server
    finally:
        server.stop()


def _run_local():
    import importlib.util

    path = REPO_ROOT / "scripts" / "run_local.py"
    spec = importlib.util.spec_from_file_location("run_local", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def frontend(tmp_path_factory) -> Iterator[ServerProcess]:
    """The frontend exactly as `make run` starts it; its ML API is never reached here."""
    from utils.local_server import free_port

    root = tmp_path_factory.mktemp("slow-clients-frontend")
    service = _run_local().build_services(free_port(), free_port(), environ={})[1]
    server = ServerProcess(service.args, log_path=root / "frontend.log",
                           env={**service.env, **LIMITS})
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the slow clients -------------------------------------------------------------------------


@dataclass
class Ending:
    """How one slow connection ended: the status the server answered (None: closed without
    an answer, or still open when the attack stopped), and after how many seconds."""

    kind: str
    status: int | None
    body: dict | None
    seconds: float
    cut: bool  # the server closed it (not the client at the end of the attack)


@dataclass
class SlowClients:
    """``heads`` slowloris clients and ``bodies`` slow uploads on ``port`` until stopped."""

    port: int
    body_path: str
    heads: int = SLOW_HEADS
    bodies: int = SLOW_BODIES
    stop: threading.Event = field(default_factory=threading.Event)
    endings: list[Ending] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SlowClients:
        kinds = ["head"] * self.heads + ["body"] * self.bodies
        self._threads = [threading.Thread(target=self._run, args=(kind,), daemon=True)
                         for kind in kinds]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, kind: str) -> None:
        while not self.stop.is_set():  # reconnect whenever cut off, as an attacker would
            self.endings.append(self._one_connection(kind))

    def _one_connection(self, kind: str) -> Ending:
        started = time.monotonic()
        with socket.create_connection((HOST, self.port), timeout=10) as sock:
            if kind == "body":
                sock.sendall(slow_upload_head(self.body_path))
                trickle = b"7" * 100_000
            else:
                trickle = (f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode()
                           + b"b" * 100_000)
            for position in range(len(trickle)):
                if self.stop.wait(TRICKLE_INTERVAL):
                    return Ending(kind, None, None, time.monotonic() - started, cut=False)
                if select.select([sock], [], [], 0)[0]:  # the server answered or closed
                    return answer(sock, kind, started)
                try:
                    sock.send(trickle[position:position + 1])
                except OSError:
                    return Ending(kind, None, None, time.monotonic() - started, cut=True)
        return Ending(kind, None, None, time.monotonic() - started, cut=False)


def slow_upload_head(path: str) -> bytes:
    """The head and first part of a multipart upload that announces 1 MB and sends little."""
    preamble = (f"--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"slow.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000000\r\n"
            f"Content-Type: multipart/form-data; boundary={MULTIPART_BOUNDARY}\r\n\r\n")
    return head.encode() + preamble


def answer(sock: socket.socket, kind: str, started: float) -> Ending:
    try:
        status, _, body = read_http_response(sock)
    except (OSError, IndexError, ValueError):  # closed without an answer
        return Ending(kind, None, None, time.monotonic() - started, cut=True)
    try:
        parsed = json.loads(body.decode())
    except ValueError:
        parsed = None
    return Ending(kind, status, parsed, time.monotonic() - started, cut=True)


# -- ordinary requests meanwhile ----------------------------------------------------------------


def ordinary_requests(requests_to_make: list[tuple[str, Callable[[], requests.Response]]],
                      stop_after: float) -> list[tuple[str, float, int | str]]:
    """Each request in turn, again and again for ``stop_after`` seconds, each on a fresh
    connection: (name, seconds, status or the exception's name)."""
    results = []
    end = time.monotonic() + stop_after
    while time.monotonic() < end:
        for name, send in requests_to_make:
            started = time.monotonic()
            try:
                outcome: int | str = send().status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            results.append((name, time.monotonic() - started, outcome))
        time.sleep(0.2)
    return results


def check_attack(slow: SlowClients, answers: list, expected_paths: dict[str, str], capsys,
                 server: str) -> None:
    times = sorted(seconds for _, seconds, _ in answers)
    figure(f"{server}: {len(answers)} ordinary requests while {slow.heads} slow heads and "
           f"{slow.bodies} slow bodies trickled 1 byte/s: p50 {times[len(times) // 2]:.3f} s, "
           f"slowest {times[-1]:.3f} s", capsys)
    for kind in ("head", "body"):
        cut = [e for e in slow.endings if e.kind == kind and e.cut]
        answered = sum(e.status == 408 for e in cut)
        if cut:
            figure(f"{server}: slow {kind} clients cut off: {len(cut)} ({answered} with a 408 read "
                   f"back) after {min(e.seconds for e in cut):.1f}-"
                   f"{max(e.seconds for e in cut):.1f} s", capsys)
    late = [(name, round(seconds, 3), outcome) for name, seconds, outcome in answers
            if seconds > ANSWER_WITHIN or outcome != 200]
    assert not late, f"ordinary requests slower than {ANSWER_WITHIN} s or failed: {late[:10]}"
    for kind, limit in (("head", HEADER_TIMEOUT), ("body", BODY_TIMEOUT)):
        cut = [e for e in slow.endings if e.kind == kind and e.cut]
        assert cut, f"no slow {kind} was cut off ({expected_paths[kind]})"
        answered = [e for e in cut if e.status is not None]
        assert answered, f"no slow {kind} got an answer before being cut off"
        for ending in answered:
            assert ending.status == 408, ending
            assert ending.body is not None and ending.body["success"] is False, ending
            assert ending.body["error_type"] == "request_timeout", ending
        for ending in cut:
            assert ending.seconds <= limit + SLACK, f"cut off late: {ending}"


def test_api_answers_within_2_s_while_20_slow_clients_trickle(api, capsys):
    small = synthetic_kdd(20, 5)

    def predict() -> requests.Response:
        return requests.post(f"{api.url}/api/predict", files={"file": ("t.txt", small)},
                             timeout=ORDINARY_TIMEOUT)

    def health() -> requests.Response:
        return requests.get(f"{api.url}/health", timeout=ORDINARY_TIMEOUT)

    port = int(api.url.rsplit(":", 1)[1])
    with SlowClients(port, "/api/predict") as slow:
        time.sleep(1.5)  # every slow client connected and trickling
        answers = ordinary_requests([("GET /health", health), ("POST /api/predict", predict)],
                                    ATTACK_SECONDS)
    check_attack(slow, answers, {"head": "GET /health", "body": "POST /api/predict"}, capsys,
                 "API")


def test_frontend_answers_within_2_s_while_20_slow_clients_trickle(frontend, capsys):
    def page() -> requests.Response:
        return requests.get(f"{frontend.url}/", timeout=ORDINARY_TIMEOUT)

    def health() -> requests.Response:
        return requests.get(f"{frontend.url}/health", timeout=ORDINARY_TIMEOUT)

    port = int(frontend.url.rsplit(":", 1)[1])
    with SlowClients(port, "/analyze") as slow:
        time.sleep(1.5)
        answers = ordinary_requests([("GET /", page), ("GET /health", health)], ATTACK_SECONDS)
    check_attack(slow, answers, {"head": "GET /health", "body": "POST /analyze"}, capsys,
                 "frontend")


# -- each limit on its own ------------------------------------------------------------------------


def stalled(port: int, first_bytes: bytes, wait_up_to: float
            ) -> tuple[float, int | None, dict | None]:
    """Send ``first_bytes`` and then nothing: (seconds until the server answered or closed,
    status or None, JSON body or None)."""
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=wait_up_to) as sock:
        if first_bytes:
            sock.sendall(first_bytes)
        try:
            status, _, body = read_http_response(sock)
        except (OSError, IndexError, ValueError):
            return time.monotonic() - started, None, None
        return time.monotonic() - started, status, json.loads(body.decode())


@pytest.mark.parametrize("server_name", ["api", "frontend"])
def test_stalled_clients_are_cut_off_after_the_read_timeout(server_name, request):
    """A head that stops half-way and a body that stops half-way: 408 JSON after the per-read
    timeout; a connection that sends nothing at all: closed without an answer."""
    server = request.getfixturevalue(server_name)
    port = int(server.url.rsplit(":", 1)[1])
    upload_path = "/api/predict" if server_name == "api" else "/analyze"
    cases = {
        "half a head": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ",
        "half a body": slow_upload_head(upload_path) + b"1,tcp,http",
        "nothing": b"",
    }
    results: dict[str, tuple] = {}
    threads = [threading.Thread(target=lambda k=k, v=v: results.__setitem__(
        k, stalled(port, v, READ_TIMEOUT + 20))) for k, v in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    print(f"\n[slow clients] {server_name}, stalled: " + ", ".join(
        f"{name}: {status} after {seconds:.1f} s" for name, (seconds, status, _) in
        results.items()))
    for name in ("half a head", "half a body"):
        seconds, status, body = results[name]
        assert status == 408 and body["error_type"] == "request_timeout", (name, results[name])
        assert READ_TIMEOUT - 0.5 <= seconds <= READ_TIMEOUT + SLACK, (name, seconds)
    seconds, status, _ = results["nothing"]
    assert status is None and seconds <= READ_TIMEOUT + SLACK, results["nothing"]


def test_an_upload_cut_off_for_slowness_leaves_no_temp_file(api):
    """The part of a slow upload received before its 408 is not left on disk."""
    port = int(api.url.rsplit(":", 1)[1])
    _, status, body = stalled(port, slow_upload_head("/api/predict") + b"1,tcp", 30)
    assert status == 408 and body["error_type"] == "request_timeout"
    incoming = api.data_dir / "incoming"
    deadline = time.monotonic() + 5
    while incoming.exists() and any(incoming.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not incoming.exists() or not any(incoming.iterdir())
