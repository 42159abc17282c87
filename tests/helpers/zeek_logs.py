"""Synthetic Zeek conn.logs for tests: rows in Zeek's write order, as TSV or JSON lines.

Zeek writes a connection's record when it ends, so the rows come ordered by ``ts + duration``
and long connections land far from the ones that started near them; times are rounded to
milliseconds, so some rows share a ``ts``. A few resp hosts and a high rate make both window
features span many rows: at 400 connections/s a 2-second window holds more than its
511-connection cap, and 255 connections to one of 3 hosts span about 765 rows.
"""

from __future__ import annotations

import json

import numpy as np

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "label")
_NUMERIC = {"ts", "id.orig_p", "id.resp_p", "duration", "orig_bytes", "resp_bytes"}
_STATES = ("SF", "SF", "SF", "S0", "REJ", "RSTO", "RSTR", "SH", "OTH")


def conn_rows(count: int, seed: int = 0, *, rate: float = 400.0, resp_hosts: int = 3,
              long_share: float = 0.02, long_seconds: float = 20.0) -> list[list[str]]:
    """``count`` rows (field values as text, in FIELDS order) in write order.

    ``long_share`` of the connections last up to ``long_seconds``, so their rows come
    thousands of rows after the ones that started with them.
    """
    rng = np.random.default_rng(seed)
    ts = np.round(1_700_000_000 + np.cumsum(rng.exponential(1 / rate, count)), 3)
    long = rng.random(count) < long_share
    duration = np.where(long, rng.uniform(long_seconds / 4, long_seconds, count),
                        rng.exponential(0.05, count))
    order = np.argsort(ts + duration, kind="stable")
    proto = rng.choice(["tcp", "tcp", "tcp", "udp", "icmp"], count)
    resp_port = rng.choice([80, 443, 22, 53, 8080, 31337], count)
    rows = []
    for i in order.tolist():
        state = str(rng.choice(_STATES))
        unset = state in ("S0", "REJ")
        rows.append([
            f"{ts[i]:.3f}", f"C{seed}x{i}", f"10.1.0.{rng.integers(1, 20)}",
            str(rng.integers(1024, 65536)), f"10.0.0.{i % resp_hosts + 1}",
            str(8 if proto[i] == "icmp" else resp_port[i]), str(proto[i]),
            "http" if proto[i] == "tcp" and resp_port[i] == 80 and not unset else "-",
            "-" if unset else f"{duration[i]:.6f}",
            "-" if unset else str(rng.integers(0, 5000)),
            "-" if unset else str(rng.integers(0, 50000)),
            state, "Malicious" if unset else "Benign",
        ])
    return rows


def tsv_log(rows: list[list[str]], fields: tuple[str, ...] | list[str] = FIELDS, *,
            close: bool = True, opened: str | None = None, extra_header: str = "") -> bytes:
    """A TSV conn.log as Zeek writes one: the header (with an ``#open`` line when ``opened``
    names a time, and ``extra_header`` after ``#types``), the rows, then ``#close``."""
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             "#unset_field\t-", "#path\tconn"]
    if opened:
        lines.append(f"#open\t{opened}")
    lines += ["#fields\t" + "\t".join(fields),
              "#types\t" + "\t".join("string" for _ in fields)]
    if extra_header:
        lines.append(extra_header)
    lines += ["\t".join(row) for row in rows]
    if close:
        lines.append("#close\t2026-11-30-00-00-00")
    return ("\n".join(lines) + "\n").encode()


def json_log(rows: list[list[str]], fields: tuple[str, ...] = FIELDS) -> bytes:
    records = []
    for row in rows:
        record = {name: float(value) if name in _NUMERIC else value
                  for name, value in zip(fields, row, strict=True) if value != "-"}
        records.append(json.dumps(record))
    return ("\n".join(records) + "\n").encode()


def zeek_sample() -> bytes:
    """30 connections without ``#close``: web traffic, and every third one a SYN to an odd
    port whose uid looks like a spreadsheet formula."""
    rows = []
    for i in range(30):
        port = 40000 + i
        if i % 3:
            rows.append([f"{1700000000 + i}.5", f"C{i}", "10.0.0.1", str(port), "10.0.0.2",
                         "80", "tcp", "http", "1.2", "300", "4000", "SF", "Benign"])
        else:
            rows.append([f"{1700000000 + i}.5", f"=cmd{i}", "10.0.0.9", str(port), "10.0.0.2",
                         str(1000 + i), "tcp", "-", "-", "-", "-", "S0", "Malicious"])
    return tsv_log(rows, close=False)


BASELINE_START = 1_764_000_000.0  # 2025-11-24T16:00:00Z


def baseline_rows(count: int, seed: int = 0, *, hours: float = 48.0,
                  start: float = BASELINE_START, scanner: str | None = None,
                  scan_targets: int = 0, malicious_share: float = 0.0,
                  label: bool = True) -> list[list[str]]:
    """A baseline of a small office in ts order: ``count`` connections over ``hours`` from 20
    clients (10.1.0.x) to 6 servers (10.0.0.x) on web, DNS and SSH, all completing (SF).

    ``scanner`` adds ``scan_targets`` failed connections (S0 / REJ) from that host to as many
    distinct hosts and ports of 10.2.0.0/16, spread over the period. ``malicious_share`` of
    the clients' connections are labeled Malicious (they are otherwise ordinary); with
    ``label`` False the rows have no label field (write them with FIELDS_UNLABELED).
    """
    rng = np.random.default_rng(seed)
    ts = np.sort(start + rng.uniform(0, hours * 3600, count))
    services = [("tcp", 80, "http"), ("tcp", 443, "ssl"), ("udp", 53, "dns"),
                ("tcp", 22, "ssh")]
    rows = []
    for i, moment in enumerate(ts.tolist()):
        proto, port, service = services[int(rng.integers(len(services)))]
        server = f"10.0.0.{int(rng.integers(1, 7))}"
        tag = "Malicious" if rng.random() < malicious_share else "Benign"
        rows.append([f"{moment:.6f}", f"Cb{seed}x{i}", f"10.1.0.{int(rng.integers(1, 21))}",
                     str(int(rng.integers(1024, 65536))), server, str(port), proto, service,
                     f"{rng.exponential(0.5):.6f}", str(int(rng.integers(50, 2000))),
                     str(int(rng.integers(100, 40000))), "SF", tag])
    if scanner:
        scan_ts = np.sort(start + rng.uniform(0, hours * 3600, scan_targets))
        for j, moment in enumerate(scan_ts.tolist()):
            rows.append([f"{moment:.6f}", f"Cs{seed}x{j}", scanner,
                         str(int(rng.integers(1024, 65536))), f"10.2.{j // 250}.{j % 250 + 1}",
                         str(1 + j), "tcp", "-", "-", "-", "-",
                         "S0" if j % 2 else "REJ", "Benign"])
        rows.sort(key=lambda row: float(row[0]))
    if not label:
        rows = [row[:-1] for row in rows]
    return rows


FIELDS_UNLABELED = FIELDS[:-1]
