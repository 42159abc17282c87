"""How a job finds its inputs, cuts them and plans each Zeek piece's halo (no cluster)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from utils.batch.inputs import InputError, discover
from utils.batch.pieces import zeek_halos
from utils.batch.worker import non_blank_lines

ZEEK_HEAD = b"#separator \\x09\n#fields\tts\tuid\n"
KDD_LINE = b"0,tcp,http,SF,181,5450" + b",0" * 35 + b",normal,20\n"


def _brute_force_halos(times, lookback):
    ts = np.concatenate(times)
    owner = np.repeat(np.arange(len(times)), [len(t) for t in times])
    offsets = np.concatenate(([0], np.cumsum([len(t) for t in times])))
    order = np.argsort(ts, kind="stable")
    position = {row: i for i, row in enumerate(order.tolist())}
    halos = []
    for q in range(len(times)):
        needed = set()
        for row in range(offsets[q], offsets[q + 1]):
            at = position[row]
            needed |= {int(r) for r in order[max(0, at - lookback):at] if owner[r] != q}
        halo = {}
        for row in sorted(needed):
            halo.setdefault(int(owner[row]), []).append(row - offsets[owner[row]])
        halos.append(halo)
    return halos


@pytest.mark.parametrize("seed", range(5))
def test_halos_hold_exactly_each_rows_predecessors_in_time_from_other_pieces(seed):
    rng = np.random.default_rng(seed)
    # written when connections end: start times out of order, some long ones, ties
    starts = np.round(np.cumsum(rng.exponential(0.01, 900)), 2)
    ends = starts + np.where(rng.random(900) < 0.05, rng.uniform(1, 5, 900), 0.0)
    ts = starts[np.argsort(ends, kind="stable")]
    cuts = np.sort(rng.choice(np.arange(1, 900), 6, replace=False))
    times = np.split(ts, cuts)
    times.insert(3, np.empty(0))  # a piece without records
    got = zeek_halos(times, lookback=40)
    want = _brute_force_halos(times, 40)
    assert [{p: rows.tolist() for p, rows in h.items()} for h in got] == want
    assert any(p > q for q, h in enumerate(want) for p in h)  # late rows of later pieces too


def test_blank_lines_do_not_count_as_records():
    assert [non_blank_lines(d) for d in (b"", b"a", b"a\n\n", b"\n \r\na\n  ", b"a\nb\n\t\nc")
            ] == [0, 1, 1, 1, 3]


def test_archives_are_sensors_with_files_in_time_order(tmp_path):
    for sensor in ("east", "west"):
        for day, clock in (("2026-11-30", "23:00:00-00:00:00"), ("2026-11-30", "01:00:00-02:00:00"),
                           ("2026-12-01", "00:00:00-01:00:00")):
            path = tmp_path / "archive" / sensor / day / f"conn.{clock}.log.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(ZEEK_HEAD + b"1.0\tC1\n"))
        (tmp_path / "archive" / sensor / "2026-11-30" / "dns.00:00:00-01:00:00.log.gz"
         ).write_bytes(b"")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "b.log").write_bytes(ZEEK_HEAD + b"2.0\tC2\n")
    (loose / "a.log").write_bytes(ZEEK_HEAD + b"1.0\tC1\n")
    (loose / "kdd.txt").write_bytes(KDD_LINE)
    other = tmp_path / "elsewhere" / "conn.log"
    other.parent.mkdir()
    other.write_bytes(ZEEK_HEAD + b"1.0\tC1\n")

    found = discover([str(tmp_path / "archive"), str(loose)], {"dmz": str(other)})

    streams = {s.sensor: [f.path.split("/")[-2:] for f in s.files] for s in found.streams}
    assert streams["east"] == [["2026-11-30", "conn.01:00:00-02:00:00.log.gz"],
                               ["2026-11-30", "conn.23:00:00-00:00:00.log.gz"],
                               ["2026-12-01", "conn.00:00:00-01:00:00.log.gz"]]
    assert set(streams) == {"east", "west", "loose", "dmz"}
    assert streams["loose"] == [["loose", "a.log"], ["loose", "b.log"]]
    assert [f.path for f in found.kdd] == [str(loose / "kdd.txt")]
    assert all(f.gzip for s in found.streams if s.sensor == "east" for f in s.files)


def test_an_input_that_names_nothing_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        discover([str(tmp_path / "missing")])
    with pytest.raises(InputError, match="no file matches"):
        discover([str(tmp_path / "*.log")])
