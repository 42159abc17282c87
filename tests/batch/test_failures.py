"""Bad files and killed workers: a clear error naming file, line and column, or (with
``--on-error skip``) the rest scored and the bad file listed; a worker SIGKILLed mid-job
changes nothing in the output."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from tests.helpers.batch_scoring import (
    COMPARED,
    MODEL_DIR,
    in_process,
    scored_output,
    write_log,
    zeek_lines,
)
from tests.helpers.repo import REPO_ROOT
from utils.batch.job import JobFailed, JobOptions, run_job

pytestmark = pytest.mark.e2e  # a real Dask LocalCluster of worker processes


def _bad_kdd(kdd_test_path, folder, bad_line: int = 5_000):
    """6,000 KDDTest+ lines with a word for src_bytes on ``bad_line``."""
    lines = kdd_test_path.read_text().splitlines()[:6_000]
    fields = lines[bad_line - 1].split(",")
    fields[4] = "lots"
    lines[bad_line - 1] = ",".join(fields)
    path = folder / "bad.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_bad_kdd_file_stops_the_job_naming_file_line_and_column(local_client, tmp_path,
                                                                   kdd_test_path):
    bad = _bad_kdd(kdd_test_path, tmp_path / "in")  # line 5,000 is in its third piece
    with pytest.raises(JobFailed) as info:
        run_job(JobOptions(inputs=[str(bad)], out=tmp_path / "out", model_dir=MODEL_DIR,
                           piece_mb=0.3), local_client)
    message = str(info.value)
    assert str(bad) in message and "line 5000" in message and "column src_bytes" in message
    assert "'lots' is not a number" in message


def test_with_skip_the_other_files_are_scored_and_the_bad_one_listed(local_client, model,
                                                                    tmp_path, kdd_test_path):
    bad = _bad_kdd(kdd_test_path, tmp_path / "in")
    good = tmp_path / "in" / "good.txt"
    good.write_bytes(b"".join(kdd_test_path.read_bytes().splitlines(keepends=True)[:3_000]))
    header, rows = zeek_lines(3_000, seed=5)
    broken = list(rows)
    fields = broken[1_500].split("\t")
    fields[3] = "70000"  # id.orig_p out of range, on line 7 + 1,501 of the log
    broken[1_500] = "\t".join(fields)
    zeek_bad = write_log(tmp_path / "in" / "conn-b.log", header, broken)
    zeek_good = write_log(tmp_path / "in" / "conn-a.log", header, rows[:1_000])

    summary = run_job(JobOptions(inputs=[str(tmp_path / "in")], out=tmp_path / "out",
                                 model_dir=MODEL_DIR, piece_mb=0.3, on_error="skip"),
                      local_client)

    skipped = {entry["file"]: entry for entry in summary["skipped"]}
    assert set(skipped) == {str(bad), str(zeek_bad)}
    assert skipped[str(bad)]["problems"][0] == {
        "line": 5000, "column": "src_bytes", "message": "'lots' is not a number"}
    assert skipped[str(zeek_bad)]["problems"][0]["line"] == len(header) + 1_501
    assert skipped[str(zeek_bad)]["problems"][0]["column"] == "id.orig_p"
    assert summary["rows"] == 3_000 + 1_000 and summary["files_scored"] == 2
    kdd = scored_output(tmp_path / "out" / "kdd", [good])
    pd.testing.assert_series_equal(kdd["score"], in_process(model, good.read_bytes())["score"],
                                   check_names=False, check_exact=True)
    zeek = scored_output(tmp_path / "out" / "zeek", [zeek_good])
    assert len(zeek) == 1_000
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"]


def test_the_command_reports_a_bad_file_and_exits_non_zero(tmp_path, kdd_test_path):
    bad = _bad_kdd(kdd_test_path, tmp_path / "in")
    done = subprocess.run(
        [sys.executable, "score_logs.py", str(bad), "--out", str(tmp_path / "out"),
         "--model", str(MODEL_DIR), "--workers", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert f"error: {bad}: line 5000, column src_bytes" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_command_scores_on_a_local_cluster_with_progress_and_dashboard(tmp_path,
                                                                           kdd_test_path):
    part = tmp_path / "part.txt"
    part.write_bytes(b"".join(kdd_test_path.read_bytes().splitlines(keepends=True)[:3_000]))
    done = subprocess.run(
        [sys.executable, "score_logs.py", str(part), "--out", str(tmp_path / "out"),
         "--model", str(MODEL_DIR), "--workers", "2", "--alerts"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Dask dashboard: http://127.0.0.1:" in done.stderr
    assert "scored 3,000/3,000 rows (100%), 1/1 files" in done.stderr
    assert "3,000 rows scored" in done.stdout
    alerts = (tmp_path / "out" / "alerts").glob("*.ndjson")
    documents = [json.loads(line) for path in alerts for line in path.read_text().splitlines()]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(documents) == summary["anomalies"] > 0
    assert {doc["event"]["kind"] for doc in documents} == {"alert"}


@pytest.mark.e2e
def test_a_worker_killed_mid_job_changes_nothing(dask_cluster, model, tmp_path):
    """Separately started ``dask scheduler`` and two ``dask worker`` processes: one is
    SIGKILLed once the first pieces are written; the job completes with the same output."""
    from distributed import Client

    header, rows = zeek_lines(6_000, seed=11)
    files = [write_log(tmp_path / "in" / "sensor-k" / "2026-11-30" /
                       f"conn.{h:02d}:00:00-{h + 1:02d}:00:00.log", header,
                       rows[h * 2_000:(h + 1) * 2_000]) for h in range(3)]
    want = in_process(model, ("\n".join([*header, *rows]) + "\n").encode())
    out = tmp_path / "out"
    result: dict = {}

    def job() -> None:
        with Client(dask_cluster.address, timeout=60) as client:
            try:
                result["summary"] = run_job(
                    JobOptions(inputs=[str(tmp_path / "in")], out=out, model_dir=MODEL_DIR,
                               piece_mb=0.02), client)
            except BaseException as exc:  # reported by the assertion below
                result["error"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    try:
        deadline = time.monotonic() + 180
        while not list(out.rglob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert thread.is_alive(), "the job ended before a worker could be killed"
        dask_cluster.kill_worker(0)
        thread.join(timeout=300)
    finally:
        dask_cluster.start()  # the next test gets both workers again
    assert "error" not in result, result.get("error")
    got = scored_output(out / "zeek", files)
    assert len(got) == 6_000 and result["summary"]["rows"] == 6_000
    for column in COMPARED:
        pd.testing.assert_series_equal(got[column], want[column], check_names=False,
                                       check_dtype=False, check_exact=True)
    assert not list(out.rglob("*.tmp"))
