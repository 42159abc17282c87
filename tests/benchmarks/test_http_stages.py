"""The request-stage benchmark: its clock's accounting, and that every stage it names is still
on the server's request path (a renamed server function must fail here, not skew the table)."""

import time

import pytest

import server.predict
import server.responses
from benchmarks.http_stages import (
    OTHER_THREADS,
    STAGES,
    StageClock,
    instrumented,
    measure_gunicorn,
    measure_in_process,
    rotated,
    table,
    uploads,
)


def test_a_stage_gets_its_time_less_the_wrapped_calls_inside_it():
    clock = StageClock()

    def inner():
        time.sleep(0.02)

    wrapped = clock.wrap("inner", inner)
    with clock.stage("outer"):
        time.sleep(0.01)
        wrapped()
    wall, cpu = clock.take()
    assert 0.019 < wall["inner"] < 0.1
    assert 0.009 < wall["outer"] < 0.019 + 0.05
    assert cpu["outer"] < 0.009  # sleeping costs no CPU
    assert clock.take() == ({}, {})


def test_a_wrapped_generator_is_timed_while_it_produces():
    clock = StageClock()

    def produce():
        for value in range(3):
            time.sleep(0.005)
            yield value

    assert list(clock.wrap_generator("gen", produce)()) == [0, 1, 2]
    wall, _ = clock.take()
    assert wall["gen"] >= 0.014


def test_rotating_the_lines_gives_new_content_with_the_same_records():
    lines = [b"a", b"b", b"c"]
    assert rotated(lines, 1) == b"b\nc\na\n"
    assert sorted(rotated(lines, 2).split()) == sorted(rotated(lines, 0).split())


def test_the_instrumented_functions_are_restored_afterwards():
    before = (server.predict.keep_upload, server.responses.explain)
    with instrumented(StageClock()):
        assert server.predict.keep_upload is not before[0]
    assert (server.predict.keep_upload, server.responses.explain) == before


def test_every_stage_of_a_new_upload_is_found_on_the_request_path(
        model_dir, kdd_test_path, kdd_train_path):
    scenarios = uploads(kdd_test_path, kdd_train_path, kdd99_rows=3_000)
    scenarios = {name: scenarios[name] for name in ("1,000 rows, new", "KDDTest+ (same file)")}
    result = measure_in_process(model_dir, scenarios, rounds=2, threads=2)
    new = result["1,000 rows, new"]
    assert new["rounds"] == 2 and new["response_bytes"] > 0
    wall = new["best_seconds"]["wall"]
    timed = {stage for stage, _ in STAGES if stage not in (OTHER_THREADS, "keep: other")}
    assert {stage for stage in timed if wall[stage] == 0.0} == set()
    total = new["request_best_seconds"]["wall"]
    assert sum(wall.values()) == pytest.approx(total, rel=0.5)
    same = result["KDDTest+ (same file)"]["best_seconds"]["wall"]
    assert same["keep: fsync file"] == 0.0  # a duplicate is not written again
    assert "| explanations |" in table({"in_process": result})


@pytest.mark.e2e
def test_the_gunicorn_comparison_posts_every_upload_and_counts_the_cpu(
        model_dir, kdd_test_path, kdd_train_path):
    scenarios = uploads(kdd_test_path, kdd_train_path, kdd99_rows=2_000)
    real = measure_gunicorn(scenarios, rounds=1, concurrent_seconds=0.5, workers=1, threads=4,
                            env={"ANOMALYZE_MODEL_DIR": str(model_dir)})
    assert set(real["sequential"]) == set(scenarios)
    for found in real["sequential"].values():
        assert found["client_wall_best_s"] >= found["view_best_s"] > 0
        assert found["client_cpu_mean_s"] > 0
    assert [(row["files"], row["clients"]) for row in real["concurrent"]] == [
        ("new", 1), ("new", 4), ("same file", 4)]
    assert all(row["requests"] > 0 and row["server_cpu_per_request_s"] > 0
               for row in real["concurrent"])
