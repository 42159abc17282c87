"""A batch job on a real local cluster scores every record exactly as one process scoring the
whole stream would, across pieces, files, gzip and plain, TSV and JSON."""

from __future__ import annotations

import json

import numpy as np
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
from utils.batch.job import JobOptions, run_job
from utils.batch.readers import kdd_records
from utils.schema import FEATURE_NAMES

pytestmark = pytest.mark.e2e  # a real Dask LocalCluster of worker processes

PIECE_MB = 0.05  # about 500 Zeek rows: pieces end inside 2-second and 255-connection windows


def _json_lines(count: int, seed: int) -> tuple[list[str], list[str]]:
    from tests.helpers.zeek_logs import conn_rows, json_log

    rows = conn_rows(count, seed=seed, rate=400, long_share=0.02, long_seconds=20)
    return [], json_log(rows).decode().splitlines()


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want)
    for column in COMPARED:
        pd.testing.assert_series_equal(got[column].reset_index(drop=True),
                                       want[column].reset_index(drop=True),
                                       check_names=False, check_dtype=False, check_exact=True)


@pytest.mark.parametrize("layout", ["tsv", "json"])
def test_a_zeek_archive_scores_as_one_process_scoring_the_whole_stream(
        layout, local_client, model, tmp_path):
    header, rows = zeek_lines(6_000, seed=3) if layout == "tsv" else _json_lines(6_000, 3)
    archive = tmp_path / "sensor-a"
    files = [
        write_log(archive / "2026-11-30" / "conn.00:00:00-01:00:00.log.gz", header,
                  rows[:2_000], gz=True),
        write_log(archive / "2026-11-30" / "conn.01:00:00-02:00:00.log", header,
                  rows[2_000:4_500]),
        write_log(archive / "2026-12-01" / "conn.00:00:00-01:00:00.log.gz", header,
                  rows[4_500:], gz=True),
    ]
    whole = ("\n".join([*header, *rows]) + "\n").encode()
    want = in_process(model, whole)

    summary = run_job(JobOptions(inputs=[str(tmp_path)], out=tmp_path / "out",
                                 model_dir=MODEL_DIR, piece_mb=PIECE_MB), local_client)

    got = scored_output(tmp_path / "out" / "zeek", files)
    _assert_same(got, want)
    assert got["row"].tolist() == [*range(2_000), *range(2_500), *range(1_500)]
    assert set(got["sensor"].astype(str)) == {"sensor-a"}
    assert summary["rows"] == 6_000 and summary["anomalies"] == int(want["is_anomaly"].sum())
    assert summary["sensors"] == [{"sensor": "sensor-a", "files": [str(f) for f in files]}]
    assert summary["metrics"]["labeled_samples"] == 6_000
    assert sum(entry["rows"] for entry in summary["by_sensor_day"]) == 6_000


def test_pieces_scored_alone_would_differ_in_both_windows(model):
    """The check above can fail: without its halo, the first piece of the plain file gets
    other 2-second-window and 255-connection-window features than in the whole stream."""
    header, rows = zeek_lines(6_000, seed=3)
    whole = kdd_records(("\n".join([*header, *rows]) + "\n").encode()).features
    alone = kdd_records(("\n".join([*header, *rows[2_000:2_500]]) + "\n").encode()).features
    inside = whole.iloc[2_000:2_500].reset_index(drop=True)
    assert (alone["count"] != inside["count"]).any()
    assert (alone["dst_host_count"] != inside["dst_host_count"]).any()


def test_kdd_files_plain_and_gzip_score_as_one_process(local_client, model, kdd_test_path,
                                                       tmp_path):
    import gzip

    lines = kdd_test_path.read_bytes().splitlines(keepends=True)
    header = (",".join([*FEATURE_NAMES, "label", "difficulty"]) + "\n").encode()
    plain = tmp_path / "in" / "with-header.csv"
    plain.parent.mkdir()
    plain.write_bytes(header + b"".join(lines[:12_000]))
    packed = tmp_path / "in" / "rest.txt.gz"
    packed.write_bytes(gzip.compress(b"".join(lines[12_000:])))

    summary = run_job(JobOptions(inputs=[str(tmp_path / "in")], out=tmp_path / "out",
                                 model_dir=MODEL_DIR, piece_mb=0.3), local_client)

    got = scored_output(tmp_path / "out" / "kdd", [plain, packed])
    want = pd.concat([in_process(model, plain.read_bytes()),
                      in_process(model, packed.read_bytes())], ignore_index=True)
    _assert_same(got, want)
    assert got["row"].tolist() == [*range(12_000), *range(len(lines) - 12_000)]
    assert len(list((tmp_path / "out" / "kdd").glob("*.parquet"))) > 3  # plain file split
    assert summary["rows"] == len(lines)
    assert summary["metrics"]["labeled_samples"] == len(lines)
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["rows"] == len(lines) and written["skipped"] == []


def test_the_model_is_loaded_once_per_worker_and_travels_as_a_hash(local_client, tmp_path,
                                                                    kdd_test_path):
    from utils.batch.worker import loaded_models, sha256_file

    run_job(JobOptions(inputs=[str(kdd_test_path)], out=tmp_path / "out",
                       model_dir=MODEL_DIR, piece_mb=0.3), local_client)
    held = list(local_client.run(loaded_models).values())
    digest = sha256_file(MODEL_DIR / "model.joblib")
    # loaded by a worker that had a task, once; the other kind's model of an earlier job may
    # be held beside it
    assert any(digest in hashes for hashes in held)
    assert all(hashes.count(digest) <= 1 and len(hashes) <= 2 for hashes in held)
    assert np.isfinite(pd.read_parquet(tmp_path / "out" / "kdd")["score"]).all()


def test_scoring_and_explaining_in_chunks_changes_nothing(model, kdd_test_path):
    from utils.batch.readers import (
        explain,
        explain_in_chunks,
        score_in_chunks,
        score_records,
    )

    records = kdd_records(kdd_test_path.read_bytes())
    whole, chunked = score_records(model, records), score_in_chunks(model, records, 1_000)
    for name in ("anomaly_score", "is_anomaly", "confidence", "severity", "votes"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))
    some = records.features.iloc[:2_500]
    assert explain_in_chunks(model, some, 1_000) == explain(model, some)
