"""A baseline trained from the web, end to end under real gunicorn with real job processes.

An admin uploads the earlier part (by ``ts``) of a real Zeek conn.log, the job's process
trains it and the model is promoted (by the gate as the first Zeek model, or by the admin if
the health report held it); a later Zeek file is then scored by the new Zeek model while a
KDD file is still scored by the KDD model, and rolling the Zeek model back leaves the KDD
model alone. Needs the baseline library (utils/baseline/) and the per-kind model routing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import requests

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.models import copy_model
from tests.helpers.repo import REPO_ROOT, require_file
from tests.helpers.servers import Gunicorn
from tests.helpers.waiting import poll


def _routes_per_kind() -> bool:
    import server.model_holder

    return hasattr(server.model_holder, "model_for_input")


pytestmark = [
    pytest.mark.e2e, pytest.mark.slow,
    pytest.mark.xfail(importlib.util.find_spec("utils.baseline.training") is None
                      or not _routes_per_kind(),
                      reason="needs utils.baseline from the baseline20 branch and the "
                             "per-kind model routing from the kinds20 branch", strict=False),
]

SAMPLE = REPO_ROOT.parent / "shared" / "data" / "zeek" / "ctu-botnet-4.conn.log.labeled"
TOKEN = "baseline-e2e-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = (5, 120)
TRAINING = 900.0  # bound on one baseline job under a loaded 2-core machine


def split_by_ts(source: Path, folder: Path) -> dict[str, Path]:
    """The log's rows ordered by ``ts``, cut into its first quarter, its first half and its
    second half, each with the log's header (written to ``folder``: never committed)."""
    lines = source.read_text().splitlines()
    header = [line for line in lines if line.startswith("#") and not line.startswith("#close")]
    rows = sorted((line for line in lines if line and not line.startswith("#")),
                  key=lambda line: float(line.split("\t", 1)[0]))
    half = len(rows) // 2
    parts = {"quarter": rows[:half // 2], "first-half": rows[:half], "second-half": rows[half:]}
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"ctu-{name}.conn.log"
        paths[name].write_text("\n".join(header + part) + "\n")
    return paths


def train(server: Gunicorn, path: Path) -> str:
    """Send ``path`` as a baseline, wait for its job, promote it if held; the new version."""
    with open(path, "rb") as handle:
        response = requests.post(f"{server.url}/api/models/baseline", headers=ADMIN,
                                 files={"files": (path.name, handle)}, timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]

    def finished() -> dict | None:
        job = requests.get(f"{server.url}/api/models/baseline/{job_id}", headers=ADMIN,
                           timeout=TIMEOUT).json()["job"]
        return job if job["status"] not in ("queued", "running") else None

    job = poll(finished, f"baseline job {job_id}", TRAINING, interval=1.0)
    assert job["status"] in ("promoted", "held"), job
    assert job["health"]["rows"] > 0 and job["figures"] and job["version"]
    if job["status"] == "held":  # the report warned (this capture holds a botnet)
        promoted = requests.post(f"{server.url}/api/models/baseline/{job_id}/promote",
                                 headers=ADMIN, timeout=TIMEOUT)
        assert promoted.status_code == 200, promoted.text
        assert promoted.json() == {"success": True, "model_version": job["version"],
                                   "input_kind": "zeek"}
    return job["version"]


def scored_by(server: Gunicorn, data: bytes, name: str) -> tuple[str, str]:
    """The version in X-Model-Version and the input kind of the model that scored it."""
    response = requests.post(f"{server.url}/api/predict", files={"file": (name, data)},
                             timeout=TIMEOUT, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    summary = response.json()["summary"]
    assert summary["model"]["version"] == response.headers["X-Model-Version"]
    return response.headers["X-Model-Version"], summary["model"]["input_kind"]


def every_worker_scores_with(server: Gunicorn, data: bytes, name: str, expected: tuple
                             ) -> bool:
    return all(scored_by(server, data, name) == expected for _ in range(6))


def test_a_baseline_from_the_web_scores_later_zeek_traffic_and_rolls_back_alone(
        tmp_path, model_dir):
    parts = split_by_ts(require_file(SAMPLE, "../shared/data/zeek beside the repository"),
                        tmp_path)
    models = copy_model(model_dir, tmp_path / "models")
    server = Gunicorn(tmp_path, {
        "ANOMALYZE_MODEL_DIR": str(models), "ANOMALYZE_DATA_DIR": str(tmp_path / "data"),
        "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.2", "ANOMALYZE_ADMIN_TOKEN": TOKEN,
        "WEB_CONCURRENCY": "2"})
    try:
        later = parts["second-half"].read_bytes()
        kdd = synthetic_kdd(40, 10, seed=3)
        kdd_version, kdd_kind = scored_by(server, kdd, "kdd.txt")
        assert kdd_kind == "kdd"

        first = train(server, parts["quarter"])
        second = train(server, parts["first-half"])
        assert second != first
        poll(lambda: every_worker_scores_with(server, later, "later.log", (second, "zeek")),
             "every worker scoring Zeek input with the new baseline", 60)
        assert scored_by(server, kdd, "kdd.txt") == (kdd_version, "kdd")

        rollback = requests.post(f"{server.url}/api/models/rollback", headers=ADMIN,
                                 json={"kind": "zeek"}, timeout=TIMEOUT)
        assert rollback.status_code == 200, rollback.text
        assert rollback.json()["model_version"] == first
        poll(lambda: every_worker_scores_with(server, later, "later.log", (first, "zeek")),
             "every worker scoring Zeek input with the earlier baseline", 60)
        assert scored_by(server, kdd, "kdd.txt") == (kdd_version, "kdd")
    finally:
        server.stop()
