"""Slow clients against a running server on this machine, and how long ordinary requests take
meanwhile (the figures of docs/RELIABILITY.md, "Slow clients").

``--clients`` connections trickle one byte a second: slowloris heads that never end
(``--kind head``), uploads whose body never ends (``--kind body``), or half of each (``mix``).
Meanwhile ``GET <url>/health`` is sent every 0.5 s on a fresh connection for ``--seconds``.
Prints the ordinary requests' p50 and slowest time (a request still waiting after
``--timeout`` counts as that long) and how the slow connections ended. Loopback only.

    .venv/bin/python -m benchmarks.slow_clients --url http://127.0.0.1:5000 --clients 20
    .venv/bin/python -m benchmarks.slow_clients --url http://127.0.0.1:8000 --upload-path /analyze
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from urllib.parse import urlsplit

import requests

from settings import script_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def slow_connection(host: str, port: int, kind: str, upload_path: str,
                    stop: threading.Event, endings: list[tuple[str, str, float]]) -> None:
    """One connection trickling one byte a second until stopped or cut off."""
    started = time.monotonic()
    if kind == "head":
        head, trickle = b"", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"b" * 100_000
    else:
        head = (f"POST {upload_path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                "Content-Type: multipart/form-data; boundary=zz\r\n\r\n").encode()
        trickle = b"z" * 100_000
    with socket.create_connection((host, port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for position in range(len(trickle)):
                if stop.wait(1.0):
                    endings.append((kind, "still open", time.monotonic() - started))
                    return
                sock.send(trickle[position:position + 1])
        except OSError as exc:
            endings.append((kind, f"cut off ({type(exc).__name__})",
                            time.monotonic() - started))


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{config['API_PORT']}")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--kind", choices=("head", "body", "mix"), default="mix")
    parser.add_argument("--upload-path", default="/api/predict")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="per ordinary request")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.hostname not in LOOPBACK:
        parser.error("this sends slow traffic: only to a server on this machine (loopback)")

    stop = threading.Event()
    endings: list[tuple[str, str, float]] = []
    kinds = [("head" if args.kind == "head" or (args.kind == "mix" and n % 2 == 0) else "body")
             for n in range(args.clients)]
    threads = [threading.Thread(target=slow_connection, daemon=True,
                                args=(parts.hostname, parts.port, kind, args.upload_path, stop,
                                      endings)) for kind in kinds]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    times, failures = [], 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            ok = requests.get(f"{args.url}/health", timeout=(5, args.timeout)).ok
        except requests.RequestException:
            ok = False
        times.append(time.monotonic() - started)
        failures += not ok
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    times.sort()
    print(f"{args.clients} slow clients ({args.kind}), {len(times)} ordinary requests: "
          f"p50 {times[len(times) // 2]:.3f} s, slowest {times[-1]:.3f} s, failed {failures}")
    for kind in sorted({k for k, _, _ in endings}):
        cut = [s for k, how, s in endings if k == kind and how.startswith("cut")]
        if cut:
            print(f"  slow {kind}: {len(cut)} cut off by the server after "
                  f"{min(cut):.1f}-{max(cut):.1f} s")
        else:
            print(f"  slow {kind}: none cut off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
