"""The quota on kept uploads, end to end as an attacker fills the disk: one client sends valid
unique files as fast as it can to real gunicorn (2 workers, 4 threads each). Every upload is
analysed; past the client's quota none is kept (a forged X-Forwarded-For does not help);
another client (another loopback address) still gets its uploads kept until the total quota;
nothing is a 5xx.

The quotas are small here (a few MB) so the test is quick; the defaults (256 MB per client a
day, 1 GB in all) are the same code with bigger numbers.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import urllib3

from tests.helpers.kdd_data import kdd_bytes
from tests.helpers.models import copy_model
from tests.helpers.servers import Gunicorn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MB = 1 << 20


def kept_bytes(data_dir) -> int:
    return sum(p.stat().st_size for p in (data_dir / "uploaded_logs").rglob("*") if p.is_file())


def test_one_client_cannot_fill_the_disk_and_every_upload_is_still_analysed(
        trained, fresh_lines, tmp_path):
    _, model = trained
    data_dir = tmp_path / "data"
    server = Gunicorn(tmp_path, {
        "ANOMALYZE_MODEL_DIR": str(copy_model(model, tmp_path / "model")),
        "ANOMALYZE_DATA_DIR": str(data_dir), "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4",
        "ANOMALYZE_RETRAIN_THRESHOLD": "0",
        "ANOMALYZE_UPLOAD_CLIENT_QUOTA_MB": "2", "ANOMALYZE_UPLOAD_QUOTA_MB": "3"})
    try:
        # 60 unique files of ~90 KB (600 rows each, shifted so no two are alike): ~5.4 MB
        files = [kdd_bytes(fresh_lines[i * 50:i * 50 + 600]) for i in range(60)]
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda item: requests.post(f"{server.url}/api/predict",
                                           files={"file": (f"f{item[0]}.txt", item[1])},
                                           timeout=(5, 120)), enumerate(files)))
        elapsed = time.perf_counter() - started
        assert [a.status_code for a in answers] == [200] * len(files)
        summaries = [a.json()["summary"] for a in answers]
        assert all(s["total_samples"] == 600 for s in summaries)
        kept = [s for s in summaries if s["stored"]]
        refused = {s["store_reason"] for s in summaries if not s["stored"]}
        assert refused == {"quota_client"}
        assert kept_bytes(data_dir) <= 2 * MB
        assert kept_bytes(data_dir) > 2 * MB - 2 * max(map(len, files))  # it filled up to it

        # a forged X-Forwarded-For changes nothing: the address is the connection's
        forged = requests.post(f"{server.url}/api/predict", timeout=(5, 120),
                               files={"file": ("x.txt", kdd_bytes(fresh_lines[5000:5600]))},
                               headers={"X-Forwarded-For": "203.0.113.9"})
        assert forged.json()["summary"]["store_reason"] == "quota_client"

        # another client (another loopback address) is kept until the total quota is reached
        other = urllib3.PoolManager(source_address=("127.0.0.2", 0))
        more = [kdd_bytes(fresh_lines[6000 + i * 600:6600 + i * 600]) for i in range(20)]
        second = [json.loads(other.request("POST", f"{server.url}/api/predict",
                                           fields={"file": (f"b{i}.txt", data)},
                                           timeout=120).data)["summary"]
                  for i, data in enumerate(more)]
        assert second[0]["stored"] is True
        assert {s["store_reason"] for s in second if not s["stored"]} == {"quota_total"}
        assert kept_bytes(data_dir) <= 3 * MB
        print(json.dumps({"uploads": len(files), "sent_mb": round(sum(map(len, files)) / MB, 2),
                          "kept": len(kept), "seconds": round(elapsed, 2),
                          "second_client_kept": sum(s["stored"] for s in second),
                          "kept_mb_in_all": round(kept_bytes(data_dir) / MB, 2)}))
        assert not list((data_dir / "incoming").glob("*.part"))
    finally:
        server.stop()
