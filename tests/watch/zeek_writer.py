"""A stand-in for Zeek writing conn.log: replays a log's records at a steady rate, rotating.

    python zeek_writer.py SOURCE FOLDER --rate 2000 --rotate-every 5000

Writes FOLDER/conn.log with SOURCE's header, then its records, ``--rate`` lines a second;
every ``--rotate-every`` records it closes the file as Zeek does (``#close``), renames it to
``conn.<n>.log`` and opens a new conn.log with the header again. Every ``--split-every``-th
line is written in two parts with a pause between, as a writer caught mid-line leaves it.
Prints "done" when finished.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def _open(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--rotate-every", type=int, default=5000)
    parser.add_argument("--split-every", type=int, default=997)
    args = parser.parse_args()
    lines = args.source.read_bytes().splitlines(keepends=True)
    header = [line for line in lines if line.startswith(b"#") and not line.startswith(
        b"#close")]
    records = [line for line in lines if not line.startswith(b"#")]
    path = args.folder / "conn.log"
    out = _open(path)
    os.write(out, b"".join(header))
    started = time.monotonic()
    rotations = 0
    for number, record in enumerate(records, start=1):
        due = started + number / args.rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if number % args.split_every == 0:
            os.write(out, record[:len(record) // 2])
            time.sleep(0.05)
            os.write(out, record[len(record) // 2:])
        else:
            os.write(out, record)
        if number % args.rotate_every == 0 and number < len(records):
            os.write(out, b"#close\t2026-11-30-00-00-00\n")
            os.close(out)
            rotations += 1
            os.rename(path, args.folder / f"conn.{rotations:03d}.log")
            time.sleep(0.05)  # Zeek opens the new file a moment later
            out = _open(path)
            os.write(out, b"".join(header))
    os.write(out, b"#close\t2026-11-30-00-00-00\n")
    os.close(out)
    print("done", flush=True)


if __name__ == "__main__":
    main()
