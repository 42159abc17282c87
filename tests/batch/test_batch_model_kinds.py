"""A batch job scores each input kind with the model of that kind, as the API does per upload:
KDD records with the model folder's own model, Zeek logs with its ``zeek/`` baseline when
there is one (and says so when there is none)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.helpers.batch_scoring import MODEL_DIR, in_process, scored_output, write_log, zeek_lines
from tests.helpers.models import train_zeek_model
from utils.batch.job import JobFailed, JobOptions, run_job
from utils.batch.models import job_models
from utils.batch.readers import load_scoring_model, model_card
from utils.batch.worker import loaded_models

pytestmark = pytest.mark.e2e  # a real Dask LocalCluster of worker processes


@pytest.fixture(scope="module")
def both_kinds(tmp_path_factory):
    """The committed KDD model with a Zeek baseline beside it, as the service keeps them."""
    folder = tmp_path_factory.mktemp("models") / "models"
    shutil.copytree(MODEL_DIR, folder)
    train_zeek_model(folder, seed=2)
    return folder


@pytest.fixture
def inputs(tmp_path, kdd_test_path):
    header, rows = zeek_lines(3_000, seed=5)
    log = write_log(tmp_path / "in" / "sensor-a" / "conn.log.gz", header, rows, gz=True)
    kdd = tmp_path / "in" / "kdd.txt"
    kdd.write_bytes(b"".join(kdd_test_path.read_bytes().splitlines(keepends=True)[:2_000]))
    whole = ("\n".join([*header, *rows]) + "\n").encode()
    return log, kdd, whole


def test_kdd_records_and_zeek_logs_each_go_to_their_kinds_model(local_client, both_kinds,
                                                                 inputs, tmp_path):
    log, kdd, whole = inputs
    summary = run_job(JobOptions(inputs=[str(log), str(kdd)], out=tmp_path / "out",
                                 model_dir=both_kinds), local_client)

    zeek_model = load_scoring_model(both_kinds / "zeek")
    kdd_model = load_scoring_model(both_kinds)
    got = scored_output(tmp_path / "out" / "zeek", [log])
    want = in_process(zeek_model, whole)
    pd.testing.assert_series_equal(got["score"], want["score"], check_names=False,
                                   check_exact=True)
    assert not got["score"].equals(in_process(kdd_model, whole)["score"])
    kdd_got = pd.read_parquet(tmp_path / "out" / "kdd").sort_values("row")
    kdd_want = in_process(kdd_model, kdd.read_bytes())
    assert kdd_got["score"].tolist() == kdd_want["score"].tolist()
    assert summary["models"] == {
        "kdd": {"version": model_card(both_kinds)["model_version"],
                "sha256": job_models(both_kinds).refs["kdd"].sha256, "folder": str(both_kinds)},
        "zeek": {"version": model_card(both_kinds / "zeek")["model_version"],
                 "sha256": job_models(both_kinds).refs["zeek"].sha256,
                 "folder": str(both_kinds / "zeek")}}
    assert summary["warnings"] == []
    held = [set(hashes) for hashes in local_client.run(loaded_models).values()]
    assert {ref.sha256 for ref in job_models(both_kinds).refs.values()} <= set().union(*held)
    assert all(len(hashes) <= 2 for hashes in held)  # at most one model per input kind


def test_without_a_zeek_baseline_the_kdd_model_scores_zeek_logs_and_the_summary_warns(
        local_client, inputs, tmp_path):
    log, _, whole = inputs
    summary = run_job(JobOptions(inputs=[str(log)], out=tmp_path / "out",
                                 model_dir=MODEL_DIR), local_client)
    got = scored_output(tmp_path / "out" / "zeek", [log])
    want = in_process(load_scoring_model(MODEL_DIR), whole)
    assert got["score"].tolist() == want["score"].tolist()
    assert list(summary["models"]) == ["kdd"]
    assert [w["code"] for w in summary["warnings"]] == ["input_kind_mismatch"]
    assert "zeek input was scored by the kdd model" in summary["warnings"][0]["message"]


def test_a_zeek_model_folder_given_alone_scores_everything_with_it(both_kinds):
    models = job_models(both_kinds / "zeek")
    assert list(models.refs) == ["zeek"]
    assert models.ref_for("kdd") == models.ref_for("zeek") == models.refs["zeek"]
    assert models.as_json({"kdd"})["warnings"][0]["code"] == "input_kind_mismatch"


def test_a_folder_without_a_model_stops_the_job_with_a_clear_error(local_client, inputs,
                                                                    tmp_path):
    log, _, _ = inputs
    with pytest.raises(JobFailed, match="no model in"):
        run_job(JobOptions(inputs=[str(log)], out=tmp_path / "out",
                           model_dir=tmp_path / "nothing"), local_client)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["card not json", "card missing"])
def test_a_broken_baseline_beside_the_kdd_model_stops_the_job_naming_the_file(
        local_client, both_kinds, inputs, tmp_path, damage):
    folder = tmp_path / "models"
    shutil.copytree(both_kinds, folder)
    card = folder / "zeek" / "model_card.json"
    if damage == "card missing":
        card.unlink()
    else:
        card.write_text("{not json")
    log, _, _ = inputs
    with pytest.raises(JobFailed, match=r"cannot read the models in .*zeek") as caught:
        run_job(JobOptions(inputs=[str(log)], out=tmp_path / "out", model_dir=folder),
                local_client)
    assert "Traceback" not in str(caught.value)
