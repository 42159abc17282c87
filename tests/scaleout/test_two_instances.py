"""Acceptance for several instances: two real gunicorn instances, each with its own empty state
folder (no shared disk), one real PostgreSQL and one real S3 server (SeaweedFS), real retrain
processes. Exact counts under concurrency, one retrain at a time across instances, a killed
retrain, promotions and rollbacks reaching both, and each server taken away mid-load."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.helpers.kdd_data import kdd_bytes, lines_of, write_base
from tests.helpers.models import SMALL_K_TEXT, train_small
from tests.helpers.servers import Gunicorn
from tests.helpers.waiting import poll
from utils.object_store import ObjectStore
from utils.pg_registry import PostgresRegistry, PostgresRetrainLock
from utils.registry import pid_alive
from utils.shared_store import StoreFiles

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "two-instance-admin-token"
TIMEOUT = (5, 60)
WAIT = 180.0
SWAP_DEADLINE = 10.0  # a promotion or rollback reaches every instance within this


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, kdd_train20_path) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("scaleout-model")
    base = write_base(kdd_train20_path, root / "base.txt")
    return base, train_small(base, root / "model"), lines_of(kdd_train20_path)[3000:]


@dataclass
class Cluster:
    instances: list[Gunicorn]
    registry: PostgresRegistry
    db_url: str
    roots: list[Path]
    train_files: list[Path]
    lines: list[str]
    base: Path
    stopped: list[Gunicorn] = field(default_factory=list)

    def post(self, index: int, data: bytes, name: str = "u.txt") -> dict:
        response = requests.post(f"{self.instances[index].url}/api/predict",
                                 files={"file": (name, data)}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()["summary"]

    def admin(self, index: int, path: str, body: dict | None = None) -> requests.Response:
        return requests.post(f"{self.instances[index].url}{path}", json=body, timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {TOKEN}"})

    def served(self, index: int, n: int = 12) -> set[str]:
        """Versions named by ``n`` requests on fresh connections (spread over the workers)."""
        url = f"{self.instances[index].url}/health"
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: requests.get(
                url, timeout=TIMEOUT, headers={"Connection": "close"}).json(), range(n)))
        return {answer["model_version"] for answer in answers}

    def both_serve(self, version: str) -> bool:
        return all(self.served(i) == {version} for i in range(len(self.instances)))

    def finished_runs(self) -> list[dict]:
        return sorted((r for r in self.registry.runs(50) if r["outcome"] != "running"),
                      key=lambda r: r["id"])

    def upload(self, i: int) -> bytes:
        return kdd_bytes(self.lines[i * 40:(i + 1) * 40])


@pytest.fixture
def threshold() -> int:
    """New uploads per automatic retrain (the outage tests set 0: retrains only on demand)."""
    return 10


@pytest.fixture
def cluster(small_model, postgres_server, s3_server, pg_url, store_url, tmp_path, threshold):
    base, model, lines = small_model
    instances, roots, train_files = [], [], []
    try:
        for index in range(2):
            root = tmp_path / f"instance-{index}"
            root.mkdir()
            model_dir = root / "model"
            if index == 0:  # the first brings the model; the second starts empty
                shutil.copytree(model, model_dir)
            train_file = root / "train.txt"  # each machine ships its training file
            shutil.copy(base, train_file)
            env = {
                "ANOMALYZE_MODEL_DIR": str(model_dir), "ANOMALYZE_DATA_DIR": str(root / "data"),
                "ANOMALYZE_DATABASE_URL": pg_url, "ANOMALYZE_STORE_URL": store_url,
                **s3_server.env(),
                "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.5", "WEB_CONCURRENCY": "2",
                "GUNICORN_THREADS": "4", "ANOMALYZE_RETRAIN_THRESHOLD": str(threshold),
                "ANOMALYZE_RETRAIN_K": SMALL_K_TEXT,
                "ANOMALYZE_RETRAIN_TRAIN_FILE": str(train_file),
                # these tests are about the mechanics, not the gate
                "ANOMALYZE_RETRAIN_TOLERANCE": "1",
                "ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE": "1",
                "ANOMALYZE_ADMIN_TOKEN": TOKEN}
            instances.append(Gunicorn(root, env, start_timeout=90))
            roots.append(root)
            train_files.append(train_file)
        registry = PostgresRegistry(  # the tests' view: reads kept uploads as a run does
            pg_url, tmp_path / "observer", create_schema=False,
            files=StoreFiles(ObjectStore(store_url), tmp_path / "observer-cache"))
        yield Cluster(instances, registry, pg_url, roots, train_files, lines, base)
    finally:
        _kill_retrains(pg_url)  # retrain processes started by either instance
        for instance in instances:
            instance.stop()


def _kill_retrains(url: str) -> None:
    try:
        runs = PostgresRegistry(url, "/nonexistent", create_schema=False).interrupted_runs()
    except Exception:  # the database may be what the test took away
        return
    for run in runs:
        if pid_alive(run["pid"]):
            os.kill(run["pid"], signal.SIGKILL)


def _overlap(runs: list[dict]) -> bool:
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_twenty_unique_uploads_over_two_instances_count_exactly_and_retrain_twice(cluster):
    uploads = [cluster.upload(i) for i in range(20)]

    def send(wave: range) -> list[dict]:
        # each upload to one instance and, at the same time, its duplicate to the other
        jobs = [(i % 2, i) for i in wave] + [((i + 1) % 2, i) for i in wave]
        with ThreadPoolExecutor(len(jobs)) as pool:
            return list(pool.map(lambda job: cluster.post(job[0], uploads[job[1]],
                                                          f"u{job[1]}.txt"), jobs))

    first = send(range(10))
    # the second ten while the first retrain runs: their request waits for it (one at a time)
    poll(lambda: cluster.registry.running_run() or cluster.finished_runs(),
         "the first retrain to start", WAIT)
    second = send(range(10, 20))
    summaries = first + second
    assert sum(s["stored"] for s in summaries) == 20
    assert sum(s["duplicate"] for s in summaries) == 20
    assert len(cluster.registry.uploads()) == 20

    runs = poll(lambda: len(cluster.finished_runs()) >= 2 and cluster.registry.running_run()
                is None and not cluster.registry.state()["requests"] and cluster.finished_runs(),
                "both retrains to finish", WAIT)
    assert len(runs) == 2, runs
    assert [r["outcome"] for r in runs] == ["promoted", "promoted"], runs
    assert not _overlap(runs)
    assert cluster.registry.state() == {"uploads_since_retrain": 0, "requests": 0}
    assert cluster.registry.counts()["archived"] == 20
    # promoted versions reach both instances
    newest = runs[-1]["version"]
    poll(lambda: cluster.both_serve(newest), "both instances on the newest model",
         SWAP_DEADLINE + 5)
    # the status shows every instance's runs, whichever instance answers
    for index in range(2):
        status = requests.get(f"{cluster.instances[index].url}/api/retrain/status",
                              timeout=TIMEOUT).json()
        assert [r["id"] for r in status["last_runs"]] == [r["id"] for r in runs[::-1]]
        assert status["running"] is False
        assert {v["version"] for v in status["versions"]} >= {r["version"] for r in runs}


def test_a_rollback_through_either_instance_reaches_both(cluster):
    for i in range(10):
        cluster.post(i % 2, cluster.upload(i))
    [run] = poll(lambda: [r for r in cluster.finished_runs() if r["outcome"] == "promoted"],
                 "a promotion", WAIT)
    new, old = run["version"], run["previous_version"]
    started = time.monotonic()
    poll(lambda: cluster.both_serve(new), "both on the promoted model", SWAP_DEADLINE + 5)
    promoted_in = time.monotonic() - started
    answer = cluster.admin(1, "/api/models/rollback")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == old
    started = time.monotonic()
    poll(lambda: cluster.both_serve(old), "both back on the old model", SWAP_DEADLINE)
    rolled_in = time.monotonic() - started
    assert cluster.registry.counts()["quarantined"] == 10
    answer = cluster.admin(0, "/api/models/rollback", {"version": new})
    assert answer.status_code == 200, answer.text
    poll(lambda: cluster.both_serve(new), "both on the new model again", SWAP_DEADLINE)
    print(f"promotion seen on both within {promoted_in:.1f} s after the run closed; "
          f"rollback within {rolled_in:.1f} s")


def test_a_killed_retrain_releases_the_lock_and_loses_nothing(cluster):
    for train_file in cluster.train_files:  # the run blocks reading it: killed half-way
        train_file.unlink()
        os.mkfifo(train_file)
    old = cluster.served(0).pop()
    for i in range(10):
        assert cluster.post(i % 2, cluster.upload(i))["stored"]
    run = poll(cluster.registry.running_run, "the triggered retrain", WAIT)
    poll(lambda: all(u.run_id == run["id"] for u in cluster.registry.uploads()),
         "the run to claim the uploads", WAIT)
    os.kill(run["pid"], signal.SIGKILL)
    lock = PostgresRetrainLock(cluster.db_url)
    assert poll(lambda: lock.acquire(), "the lock of the killed run", 10)
    lock.release()
    assert cluster.registry.running_run() is None
    assert cluster.served(0) == {old} and cluster.served(1) == {old}
    assert cluster.registry.counts()["pending"] == 10
    for upload in cluster.registry.uploads():  # every kept upload still readable, hash-checked
        assert cluster.registry.path_of(upload).stat().st_size == upload.size
    for train_file in cluster.train_files:
        train_file.unlink()
        shutil.copy(cluster.base, train_file)
    assert cluster.admin(1, "/api/retrain").status_code == 202
    runs = poll(lambda: [r for r in cluster.finished_runs() if r["outcome"] == "promoted"]
                and cluster.finished_runs(), "the next run", WAIT)
    killed = next(r for r in runs if r["id"] == run["id"])
    assert killed["outcome"] == "failed" and "interrupted" in killed["reason"]
    newest = runs[-1]["version"]
    poll(lambda: cluster.both_serve(newest), "both on the new model", SWAP_DEADLINE + 5)


class Load:
    """Unique uploads to both instances, one after another per thread, until stopped."""

    def __init__(self, cluster: Cluster, threads: int = 4) -> None:
        self.cluster = cluster
        self.answers: list[tuple[int, dict | None, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._threads = [threading.Thread(target=self._run, args=(t,)) for t in range(threads)]

    def _content(self) -> bytes:
        with self._lock:
            n = self._next
            self._next += 1
        start = (n * 5) % (len(self.cluster.lines) - 5)
        return kdd_bytes(self.cluster.lines[start:start + 5])  # unique: rows never repeat

    def _run(self, thread: int) -> None:
        while not self._stop.is_set():
            index = (thread + len(self.answers)) % 2
            data = self._content()
            sent = time.monotonic()
            try:
                response = requests.post(f"{self.cluster.instances[index].url}/api/predict",
                                         files={"file": ("load.txt", data)}, timeout=TIMEOUT)
                summary = response.json().get("summary") if response.ok else None
                status = response.status_code
            except requests.RequestException:
                summary, status = None, -1
            with self._lock:
                self.answers.append((status, summary, time.monotonic(), sent))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _outage(cluster: Cluster, server, reason: str, seconds: float = 10.0) -> dict:
    """Load on both instances while ``server`` is down for ``seconds``: every request is
    answered 200, uploads kept before and after, not kept (``reason``) during, and every upload
    acknowledged as stored is in the registry."""
    with Load(cluster) as load:
        time.sleep(2)
        server.stop()
        down_at = time.monotonic()
        time.sleep(seconds)
        restart_at = time.monotonic()  # start() spawns it; it may serve before start() returns
        server.start()
        up_at = time.monotonic()
        poll(lambda: any(s and s["stored"] and sent > up_at for _, s, _, sent in load.answers),
             "an upload kept again", 60)
        recovered = min(t for _, s, t, sent in load.answers
                        if s and s["stored"] and sent > up_at)
    statuses = [status for status, _, _, _ in load.answers]
    assert set(statuses) == {200}, sorted(set(statuses))
    # sent after the server was gone and answered before it was started again (one answered
    # while start() waits for readiness may rightly have been kept by the restarted server)
    during = [s for _, s, t, sent in load.answers if down_at < sent and t < restart_at]
    assert during and not any(s["stored"] for s in during)
    assert {s["store_reason"] for s in during} == {reason}
    acknowledged = {s["sha256"] for _, s, _, _ in load.answers if s["stored"]}
    kept = {u.sha256 for u in cluster.registry.uploads()}
    assert acknowledged <= kept
    return {"requests": len(statuses), "during": len(during),
            "recovered_after": round(recovered - up_at, 1)}


@pytest.mark.parametrize("threshold", [0])
def test_postgres_down_for_twenty_seconds_costs_no_prediction_and_no_acknowledged_upload(
        cluster, postgres_server):
    # While the database is away an upload's answer waits for two of the pool's 3 s timeouts
    # (the allow-list read, then the keep): 20 s leave several answered before the restart;
    # in 10 s, when the uploads in flight at the stop took 6 s too, none was (a flaky run).
    figures = _outage(cluster, postgres_server, "registry_unavailable", seconds=20.0)
    health = requests.get(f"{cluster.instances[0].url}/health", timeout=TIMEOUT).json()
    assert health["backends"]["registry"]["kind"] == "postgresql"
    print(f"PostgreSQL outage: {figures}")


@pytest.mark.parametrize("threshold", [0])
def test_s3_down_costs_no_prediction_and_promotions_wait_for_it(cluster, s3_server):
    figures = _outage(cluster, s3_server, "store_unavailable")
    print(f"S3 outage: {figures}")
    with s3_server.stopped():
        poll(lambda: requests.get(f"{cluster.instances[1].url}/health", timeout=TIMEOUT)
             .json()["backends"]["store"]["reachable"] is False, "health to see the store down",
             20)
        before = cluster.served(0).pop()
        assert cluster.admin(0, "/api/retrain").status_code == 202
        log = cluster.roots[0] / "data" / "retrain.log"
        poll(lambda: log.is_file() and "waits for the next trigger" in log.read_text(),
             "the retrain to give up on the store", WAIT)
        assert not [r for r in cluster.finished_runs() if r["outcome"] == "promoted"]
        assert cluster.registry.state()["requests"] == 1  # still queued, not lost
        assert cluster.served(0) == {before} and cluster.served(1) == {before}
    assert cluster.admin(1, "/api/retrain").status_code == 202
    runs = poll(lambda: [r for r in cluster.finished_runs() if r["outcome"] == "promoted"]
                and cluster.finished_runs(), "the retrain after the outage", WAIT)
    poll(lambda: cluster.both_serve(runs[-1]["version"]), "both on the new model",
         SWAP_DEADLINE + 5)
