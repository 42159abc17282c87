"""A large gzip Zeek upload under real gunicorn: scored whole, in bounded worker memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from benchmarks.bench_http import peak_rss_mb, rss_mb, worker_pids
from benchmarks.zeek_bench import write_large_log
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.local_server import ServerProcess, gunicorn_command

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

INFLATED_MIB = 200
# Measured with one worker (2.5 M rows): before chunked reading the worker grew by 2.7 GB
# for this upload (it held the whole log, then every row's features); since, by 330 MB.
MAX_GROWTH_MB = 700


def test_200_mb_gzip_conn_log_is_scored_in_bounded_worker_memory(tmp_path: Path):
    sample = tmp_path / "sample.log"
    sample.write_bytes(tsv_log(conn_rows(2_000, seed=1, rate=200, long_seconds=5)))
    upload = tmp_path / "conn.log.gz"
    made = write_large_log(sample, upload, INFLATED_MIB << 20)
    env = {"ANOMALYZE_DATA_DIR": str(tmp_path / "data"), "WEB_CONCURRENCY": "1",
           "GUNICORN_TIMEOUT": "600"}
    with ServerProcess(gunicorn_command(), log_path=tmp_path / "gunicorn.log", env=env,
                       start_timeout=90) as server:
        (worker,) = worker_pids(server.process.pid)
        before = rss_mb(worker)
        with open(upload, "rb") as handle:
            response = requests.post(f"{server.url}/api/predict?limit=20",
                                     files={"file": ("conn.log.gz", handle)}, timeout=(5, 600))
        peak = peak_rss_mb(worker)
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert body["summary"]["total_samples"] == made["rows"] > 1_500_000
    assert body["summary"]["input_kind"] == "zeek"
    assert len(body["anomalies"]) == 20 and "uid" in body["anomalies"][0]
    assert body["metrics"]["labeled_samples"] == made["rows"]
    print(f"\n{made['rows']:,} rows, {made['inflated_mb']:.0f} MB inflated from "
          f"{made['gzip_mb']:.1f} MB: worker RSS {before:.0f} -> peak {peak:.0f} MB")
    assert peak - before < MAX_GROWTH_MB
