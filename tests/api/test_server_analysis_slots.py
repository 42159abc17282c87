"""ANOMALYZE_CONCURRENT_ANALYSES: how many uploads one worker process parses and scores at once.

The server runs more threads than analyses (threads waiting on slow clients cost little); the
slots keep the memory an analysis needs to what it was with one analysis per thread.
"""

from __future__ import annotations

import threading
import time

import pytest

import server.predict
from server import create_app
from server.config import load_config
from tests.helpers.api_calls import upload
from tests.helpers.kdd_data import synthetic_kdd


def test_four_analyses_at_once_by_default():
    assert load_config({})["CONCURRENT_ANALYSES"] == 4


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_number_of_analyses_fails_naming_the_variable(value):
    with pytest.raises(ValueError, match="ANOMALYZE_CONCURRENT_ANALYSES"):
        load_config({"ANOMALYZE_CONCURRENT_ANALYSES": value})


@pytest.mark.parametrize("route", ["/api/predict", "/api/predict-json"])
def test_analyses_past_the_limit_wait_for_a_free_slot(route, model_dir, tmp_path, monkeypatch):
    app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": tmp_path,
                      "MODEL_CHECK_INTERVAL": 0.0, "RETRAIN_THRESHOLD": 0,
                      "CONCURRENT_ANALYSES": 2})
    running, most = 0, 0
    lock = threading.Lock()

    def counted(original):
        def analyse(*args, **kwargs):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.2)
            try:
                return original(*args, **kwargs)
            finally:
                with lock:
                    running -= 1
        return analyse

    monkeypatch.setattr(server.predict, "analyse_file", counted(server.predict.analyse_file))
    monkeypatch.setattr(server.predict, "analyse_records",
                        counted(server.predict.analyse_records))
    data = synthetic_kdd(30, 5)
    records = [line.split(",")[:41] for line in data.decode().splitlines()]
    statuses = []

    def one(number: int) -> None:
        client = app.test_client()
        if route == "/api/predict":
            response = upload(client, data, name=f"t{number}.txt")
        else:
            response = client.post(route, json={"records": records})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 6
    assert most == 2
