"""Model versions and kept uploads on a real S3 server (SeaweedFS), the pointer in a real
PostgreSQL: content addressing, hash checks, sync into each instance's folder, promotion and
rollback as one transaction, and a store that goes away."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.helpers.shared_models import fake_model
from tests.helpers.waiting import poll
from utils.model_store import CARD_FILE, MODEL_FILE
from utils.object_store import CorruptObject, ObjectStore, StoreUnavailable
from utils.shared_store import SharedStoreRegistry

pytestmark = pytest.mark.e2e


def keep(registry, data: bytes):
    path = registry.data_dir / f"incoming-{hashlib.sha256(data).hexdigest()[:8]}"
    registry.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return registry.register(path, sha256=hashlib.sha256(data).hexdigest(),
                             original_name="u.txt", rows=1, has_labels=False,
                             input_kind="kdd", threshold=10)


def test_uploads_are_stored_by_content_and_read_back_checked(pg_url, store_url, tmp_path):
    store = ObjectStore(store_url)
    a = SharedStoreRegistry(pg_url, tmp_path / "a", store, tmp_path / "work-a")
    b = SharedStoreRegistry(pg_url, tmp_path / "b", ObjectStore(store_url), tmp_path / "work-b")
    first = keep(a, b"some rows\n")
    again = keep(b, b"some rows\n")
    assert first.stored and again.duplicate
    sha = first.upload.sha256
    assert first.upload.stored_path == f"{store_url}/uploads/{sha}"
    assert b.path_of(b.find(sha)).read_bytes() == b"some rows\n"  # the other instance reads it
    store.client.put_object(Bucket=store.bucket, Key=store.key_of(first.upload.stored_path),
                            Body=b"tampered\n")
    (tmp_path / "b" / "store-cache" / "uploads" / sha).unlink()
    with pytest.raises(CorruptObject):
        b.path_of(b.find(sha))


def test_a_promotion_reaches_every_instance_folder_and_a_rollback_too(pg_url, store_url,
                                                                       tmp_path):
    store = ObjectStore(store_url)
    registry = SharedStoreRegistry(pg_url, tmp_path / "data", store, tmp_path / "work")
    models = registry.models
    first = fake_model(tmp_path / "first", "v1")
    assert models.seed(first) == ["kdd"]
    assert models.seed(fake_model(tmp_path / "other", "v0")) == []  # only the first seeds
    instance_a, instance_b = tmp_path / "a", tmp_path / "b"
    assert models.sync(instance_a) == {"kdd": "v1"} and models.sync(instance_b) == {"kdd": "v1"}
    assert models.sync(instance_a) == {}  # nothing new
    kept = keep(registry, b"learned\n").upload.sha256
    # a retrain: its working folder holds the candidate, the run closes as promoted
    run = registry.start_run(trigger="test", previous_version="v1")
    registry.claim_pending(run, "kdd")
    fake_model(registry.model_dir, "v2", uploads=[kept], previous="v1",
               created="2026-01-02T00:00:00Z")
    registry.finish_run(run, "promoted", "fine", version="v2")
    assert models.current()["version"] == "v2"
    assert models.sync(instance_a) == {"kdd": "v2"}
    assert (instance_a / MODEL_FILE).read_bytes() == (registry.model_dir / MODEL_FILE).read_bytes()
    assert json.loads((instance_a / CARD_FILE).read_text())["model_version"] == "v2"
    assert [v["version"] for v in models.versions()] == ["v1", "v2"]
    previous, now, quarantined = models.rollback()
    assert (previous, now, quarantined) == ("v2", "v1", [kept])
    assert registry.find(kept).status == "quarantined"
    assert models.sync(instance_b) == {}  # it never left v1: nothing to fetch
    assert json.loads((instance_b / CARD_FILE).read_text())["model_version"] == "v1"
    assert models.sync(instance_a) == {"kdd": "v1"}


def test_a_local_write_that_was_never_promoted_is_replaced_by_the_pointer_model(
        pg_url, store_url, tmp_path):
    registry = SharedStoreRegistry(pg_url, tmp_path / "data", ObjectStore(store_url),
                                   tmp_path / "work")
    registry.models.seed(fake_model(tmp_path / "first", "v1"))
    work = registry.model_dir
    assert registry.models.sync(work) == {"kdd": "v1"}
    fake_model(work, "v2-killed-before-commit")
    assert registry.models.sync(work) == {"kdd": "v1"}


def test_a_stopped_store_refuses_uploads_and_recovers(s3_server, pg_url, store_url, tmp_path):
    registry = SharedStoreRegistry(pg_url, tmp_path / "data", ObjectStore(store_url),
                                   tmp_path / "work")
    assert keep(registry, b"before\n").stored
    with s3_server.stopped():
        with pytest.raises(StoreUnavailable):
            keep(registry, b"during\n")
        assert registry.find(hashlib.sha256(b"during\n").hexdigest()) is None
    assert poll(registry.store.reachable, "the store back")
    assert keep(registry, b"during\n").stored
    assert registry.state()["uploads_since_retrain"] == 2
