"""``s3://`` inputs on a real S3-compatible server (SeaweedFS): a Zeek archive per sensor
prefix and a KDD file score exactly as the same files from local paths; a bad object is
named with line and column; a missing bucket or an unreachable server is a one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.helpers.batch_scoring import MODEL_DIR, write_log, zeek_lines
from tests.helpers.repo import REPO_ROOT
from utils.batch import s3_inputs
from utils.batch.inputs import discover
from utils.batch.job import JobOptions, run_job
from utils.local_server import free_port

pytestmark = pytest.mark.e2e
PIECE_MB = 0.05  # plain files cut into several pieces: ranged reads cut at line ends


def _archive(root, seed: int) -> None:
    header, rows = zeek_lines(2_500, seed=seed)
    write_log(root / "2026-11-30" / "conn.00:00:00-01:00:00.log.gz", header, rows[:1_000],
              gz=True)
    write_log(root / "2026-11-30" / "conn.01:00:00-02:00:00.log", header, rows[1_000:])


def _upload(s3_server, bucket: str, folder) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=path.relative_to(folder).as_posix(),
                              Body=path.read_bytes())


def _rows(out, prefix: str) -> pd.DataFrame:
    """Every scored row, its file named relative to ``prefix``, in a fixed order."""
    frames = [pd.read_parquet(out / kind) for kind in ("kdd", "zeek") if (out / kind).exists()]
    frame = pd.concat(frames, ignore_index=True)
    assert frame["file"].str.startswith(prefix).all()
    frame["file"] = frame["file"].str.removeprefix(prefix)
    for column in ("sensor", "day"):
        if column in frame:
            frame[column] = frame[column].astype(object)
    return frame.sort_values(["file", "row"]).reset_index(drop=True)


def test_s3_prefixes_and_globs_score_as_the_same_local_files_and_a_bad_object_is_skipped(
        s3_server, local_client, tmp_path, kdd_test_path):
    src = tmp_path / "in"
    _archive(src / "archives" / "sensor-a", seed=11)
    _archive(src / "archives" / "sensor-b", seed=12)
    lines = kdd_test_path.read_bytes().splitlines(keepends=True)
    (src / "kdd").mkdir()
    (src / "kdd" / "part.txt").write_bytes(b"".join(lines[:3_000]))
    bad = lines[3_000:4_000]
    fields = bad[499].split(b",")
    fields[4] = b"lots"
    bad[499] = b",".join(fields)
    (src / "kdd" / "bad.txt").write_bytes(b"".join(bad))
    _upload(s3_server, "logs", src)

    run_job(JobOptions(inputs=[str(src / "archives"), str(src / "kdd" / "part.txt")],
                       out=tmp_path / "local", model_dir=MODEL_DIR, piece_mb=PIECE_MB),
            local_client)
    done = subprocess.run(
        [sys.executable, "score_logs.py", "s3://logs/archives/", "s3://logs/kdd/*.txt",
         "--out", str(tmp_path / "s3"), "--model", str(MODEL_DIR), "--workers", "1",
         "--partition-mb", str(PIECE_MB), "--on-error", "skip"],
        cwd=REPO_ROOT, env={**os.environ, **s3_server.env()}, capture_output=True, text=True,
        timeout=300, check=False)

    assert done.returncode == 0, done.stderr
    want = _rows(tmp_path / "local", str(src) + "/")
    got = _rows(tmp_path / "s3", "s3://logs/")
    assert len(got) == 3_000 + 2 * 2_500
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    summary = json.loads((tmp_path / "s3" / "summary.json").read_text())
    assert [s["sensor"] for s in summary["sensors"]] == ["sensor-a", "sensor-b"]
    assert summary["sensors"][0]["files"] == [
        "s3://logs/archives/sensor-a/2026-11-30/conn.00:00:00-01:00:00.log.gz",
        "s3://logs/archives/sensor-a/2026-11-30/conn.01:00:00-02:00:00.log"]
    [skipped] = summary["skipped"]
    assert skipped["file"] == "s3://logs/kdd/bad.txt"
    assert skipped["problems"][0] == {"line": 500, "column": "src_bytes",
                                      "message": "'lots' is not a number"}
    assert "s3://logs/kdd/bad.txt: line 500, column src_bytes" in done.stdout


def test_a_missing_bucket_or_object_is_named(s3_server, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(s3_inputs.S3InputError, match=r"^s3://no-such-bucket: no such bucket$"):
        discover(["s3://no-such-bucket/logs/"])
    s3_server.client().create_bucket(Bucket="empty")
    with pytest.raises(s3_inputs.S3InputError,
                       match=r"^s3://empty/nothing: no such object or prefix$"):
        discover(["s3://empty/nothing"])


def test_an_unreachable_server_is_a_clear_error_not_a_traceback(tmp_path):
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        [sys.executable, "score_logs.py", "s3://logs/archives/", "--out", str(tmp_path / "o"),
         "--model", str(MODEL_DIR), "--workers", "1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert "error: s3://logs/archives/: cannot reach the S3 server" in done.stderr
    assert "Traceback" not in done.stderr


def test_sensor_names_archive_order_and_loose_objects_follow_the_local_rules(
        s3_server, monkeypatch, tmp_path):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    header, rows = zeek_lines(50, seed=13)
    src = tmp_path / "in"
    for day, start in [("2026-12-01", "00"), ("2026-11-30", "23"), ("2026-11-30", "01")]:
        write_log(src / "arch" / day / f"conn.{start}:00:00-{start}:59:59.log.gz", header,
                  rows, gz=True)
    write_log(src / "arch" / "2026-11-30" / "dns.01:00:00-02:00:00.log", header, rows)
    write_log(src / "loose" / "b.log", header, rows)
    write_log(src / "loose" / "a.log", header, rows)
    write_log(src / "loose" / "deeper" / "c.log", header, rows)
    _upload(s3_server, "named", src)

    found = discover(["s3://named/loose/", "s3://named/loose/*.log", "s3://named/**/c.log"],
                     sensors={"edge": "s3://named/arch"})

    assert [(s.sensor, [f.path for f in s.files]) for s in found.streams] == [
        ("edge", ["s3://named/arch/2026-11-30/conn.01:00:00-01:59:59.log.gz",
                  "s3://named/arch/2026-11-30/conn.23:00:00-23:59:59.log.gz",
                  "s3://named/arch/2026-12-01/conn.00:00:00-00:59:59.log.gz"]),
        ("loose", ["s3://named/loose/a.log", "s3://named/loose/b.log"]),
        ("deeper", ["s3://named/loose/deeper/c.log"]),
    ]
    assert [f.gzip for f in found.streams[0].files] == [True] * 3
    assert {f.kind for f in found.files} == {"zeek"} and not found.kdd
