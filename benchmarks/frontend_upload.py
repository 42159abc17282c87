"""Memory and time of one large upload forwarded through the web frontend.

    python -m benchmarks.frontend_upload [--mb 100] [--runs 3]

The frontend (gunicorn, 1 worker, as `api.index:app`) receives a generated file with curl
and streams it on to a stand-in ML API in this process, which reads the body in 1 MB chunks,
checks the multipart framing and answers like `/api/predict`. The figures that matter are the
worker's peak resident memory (VmHWM, which must not grow by the file's size: the body is
streamed, never held whole) and how long forwarding takes (the stand-in's receive time) next
to the whole request (curl's time, which includes the browser-side upload to the frontend).
Not part of `make bench`: it measures the frontend's plumbing, not the detector.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from settings import script_settings
from utils.local_server import HOST, ServerProcess, free_port, gunicorn_command

LINE = b"0,tcp,http,SF,215,45076,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00," \
       b"1.00,0.00,0.00,0,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00,normal,21\n"
READ_CHUNK = 1024 * 1024


class StandInApi(BaseHTTPRequestHandler):
    """`GET /health` 200; `POST /api/predict` reads and checks the body, then answers."""

    received: ClassVar[list[dict]] = []

    def log_message(self, *_args: object) -> None:  # keep the report's output clean
        pass

    def _answer(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer({"status": "ok", "models_loaded": 5, "model_version": "stand-in"})

    def do_POST(self) -> None:
        started = time.perf_counter()
        length = int(self.headers["Content-Length"])
        boundary = self.headers["Content-Type"].split("boundary=", 1)[1].encode()
        left, head, tail = length, b"", b""
        while left:
            chunk = self.rfile.read(min(READ_CHUNK, left))
            if not chunk:
                break
            head = head or chunk[:512]
            tail = (tail + chunk)[-512:]
            left -= len(chunk)
        self.received.append({
            "bytes": length - left, "seconds": time.perf_counter() - started,
            "framed": head.startswith(b"--" + boundary) and tail.endswith(
                b"--" + boundary + b"--\r\n"),
            "chunked": "Transfer-Encoding" in self.headers,
        })
        self._answer({"success": True, "has_labels": False, "summary": {}, "anomalies": []})


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(master: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{master}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("the gunicorn worker did not start")


def main(argv: list[str] | None = None) -> int:
    script_settings()  # uses none of them, but a refused value stops every script alike
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="upload size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    api = ThreadingHTTPServer((HOST, 0), StandInApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="anomalyze-frontend-bench-") as folder:
        upload = Path(folder) / "traffic.txt"
        with upload.open("wb") as handle:
            block = LINE * (READ_CHUNK // len(LINE))
            while handle.tell() < args.mb * 1024 * 1024:
                handle.write(block)
            handle.truncate(args.mb * 1024 * 1024)
        port = free_port()
        env = {"ANOMALYZE_API_URL": f"http://{HOST}:{api.server_port}",
               "ANOMALYZE_MAX_UPLOAD_MB": str(args.mb * 2), "TMPDIR": folder}
        command = gunicorn_command("api.index:app", port, config=None,
                                   extra=("--workers", "1", "--threads", "4", "--timeout", "600"))
        with ServerProcess(command, log_path=Path(folder) / "frontend.log", env=env) as server:
            worker = worker_pid(server.process.pid)
            idle = memory_kib(worker)
            print(f"upload {upload.stat().st_size / 2**20:.1f} MiB; worker idle RSS "
                  f"{idle['VmRSS'] / 1024:.1f} MiB")
            for run in range(1, args.runs + 1):
                cpu = cpu_seconds(worker)
                started = time.perf_counter()
                result = subprocess.run(
                    ["curl", "-s", "-S", "-o", "/dev/null", "-w", "%{http_code}",
                     "-F", f"file=@{upload};type=text/plain",
                     f"http://{HOST}:{port}/analyze"], capture_output=True, text=True)
                total = time.perf_counter() - started
                cpu = cpu_seconds(worker) - cpu
                seen = StandInApi.received[-1] if StandInApi.received else {}
                peak = memory_kib(worker)["VmHWM"]
                print(f"run {run}: HTTP {result.stdout} in {total:.2f} s; forwarded "
                      f"{seen.get('bytes', 0) / 2**20:.1f} MiB in {seen.get('seconds', 0):.2f} s "
                      f"(framed={seen.get('framed')}, chunked={seen.get('chunked')}); "
                      f"worker CPU {cpu:.2f} s; worker peak RSS {peak / 1024:.1f} MiB "
                      f"(+{(peak - idle['VmRSS']) / 1024:.1f} MiB over idle)")
    api.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
