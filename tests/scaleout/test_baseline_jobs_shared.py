"""Baseline jobs on the shared backends (a real PostgreSQL and a real S3 server): the job's
files are read back from the object store, and its model reaches every instance through the
Zeek pointer (``SharedModels.publish``), whether promoted by the job or later by an admin."""

from __future__ import annotations

import hashlib

import pytest

from tests.helpers.baseline_fakes import Fakes
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.baseline.jobs import job_dir, promote_held_job, run_baseline_job
from utils.model_store import CARD_FILE, MODEL_FILE, ModelLoadError, kind_model_dir
from utils.object_store import ObjectStore
from utils.shared_store import SharedModels, SharedStoreRegistry

pytestmark = pytest.mark.e2e
needs_publish = pytest.mark.xfail(
    not hasattr(SharedModels, "publish"), strict=False,
    reason="needs SharedModels.publish (per-kind pointers) from the shared20 branch")


def queue(registry: SharedStoreRegistry, seed: int) -> int:
    data = tsv_log(conn_rows(60, seed=seed))
    path = registry.data_dir / f"incoming-{seed}"
    registry.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    kept = registry.register(path, sha256=hashlib.sha256(data).hexdigest(),
                             original_name=f"day-{seed}.log", rows=60, has_labels=True,
                             input_kind="zeek", threshold=0, trusted=True)
    return registry.create_baseline_job([kept.upload.sha256], {"report_only": False})


def run(registry, instance, job_id, fakes: Fakes):
    return run_baseline_job(job_id, registry=registry, model_dir=instance,
                            data_dir=registry.data_dir, models=registry.models,
                            trainer=fakes.trainer, reporter=fakes.reporter, gate=fakes.gate,
                            contamination=fakes.contamination, heartbeat_seconds=0.05)


@needs_publish
def test_a_baseline_reaches_every_instance_through_the_zeek_pointer(pg_url, store_url,
                                                                    tmp_path):
    registry = SharedStoreRegistry(pg_url, tmp_path / "data", ObjectStore(store_url),
                                   tmp_path / "work")
    instance_a, instance_b = tmp_path / "a", tmp_path / "b"
    job = run(registry, instance_a, queue(registry, 1), Fakes())
    assert (job["status"], job["version"]) == ("promoted", "zeek-1")
    assert registry.models.current("zeek")["version"] == "zeek-1"
    assert registry.models.current("kdd") is None  # the other kind is left alone
    registry.models.sync(instance_b)
    zeek_b = kind_model_dir(instance_b, "zeek")
    assert (zeek_b / MODEL_FILE).is_file()
    assert '"zeek-1"' in (zeek_b / CARD_FILE).read_text()

    held = run(registry, instance_a, queue(registry, 2),
               Fakes(version="zeek-2", warnings=[{"code": "possible_scanner", "message": "…",
                                                  "hosts": ["10.1.0.3"]}]))
    assert held["status"] == "held"
    assert registry.models.current("zeek")["version"] == "zeek-1"  # nothing moved
    promoted = promote_held_job(registry, held["id"], model_dir=instance_a,
                                data_dir=registry.data_dir, models=registry.models)
    assert promoted["status"] == "promoted"
    assert registry.models.current("zeek")["version"] == "zeek-2"
    registry.models.sync(instance_b)
    assert '"zeek-2"' in (zeek_b / CARD_FILE).read_text()


def test_a_held_model_is_promoted_only_where_it_waits(pg_url, store_url, tmp_path):
    registry = SharedStoreRegistry(pg_url, tmp_path / "data", ObjectStore(store_url),
                                   tmp_path / "work")
    held = run(registry, tmp_path / "a", queue(registry, 3),
               Fakes(warnings=[{"code": "possible_scanner", "message": "…", "hosts": []}]))
    elsewhere = SharedStoreRegistry(pg_url, tmp_path / "other-data", ObjectStore(store_url),
                                    tmp_path / "other-work")
    with pytest.raises(ModelLoadError, match="promote it through that instance"):
        promote_held_job(elsewhere, held["id"], model_dir=tmp_path / "b",
                         data_dir=elsewhere.data_dir, models=elsewhere.models)
    assert elsewhere.baseline_job(held["id"])["status"] == "held"
    assert (job_dir(registry.data_dir, held["id"]) / "model" / MODEL_FILE).is_file()
