"""The real servers the scale-out tests run against: PostgreSQL, SeaweedFS's S3 and a Dask
cluster start on 127.0.0.1, answer their real clients, survive being stopped and started
again (test_engine_cleanup.py shows that they leave no process behind)."""

from __future__ import annotations

import os

import boto3
import dask.dataframe as dd
import pandas as pd
import psutil
import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from distributed import Client
from psycopg_pool import ConnectionPool, PoolTimeout

from tests.helpers.waiting import poll
from tests.infra.dask_tasks import double, frame, meta

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------------------- PostgreSQL

def test_postgres_is_a_real_server_on_loopback_with_fsync_off(postgres_server):
    with psycopg.connect(postgres_server.url()) as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("listen_addresses", "fsync", "server_version")}
        database = conn.execute("SELECT current_database()").fetchone()[0]
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["fsync"] == "off"
    assert settings["server_version"].split(".")[0].isdigit()
    assert database == "anomalyze"
    if os.geteuid() == 0:  # PostgreSQL refuses root; the launcher drops to `postgres`
        assert psutil.Process(postgres_server.pid).username() == "postgres"


def test_postgres_keeps_committed_rows_and_a_pool_reconnects_after_a_restart(postgres_server):
    url = postgres_server.create_database("restart_check")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (n integer)")
        conn.execute("INSERT INTO kept VALUES (%s), (%s)", (1, 2))
    with ConnectionPool(url, min_size=1, max_size=2, check=ConnectionPool.check_connection,
                        open=True) as pool:
        pool.wait(timeout=30)
        with postgres_server.stopped():
            assert postgres_server.pid is None
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(url, connect_timeout=2)
            with pytest.raises(PoolTimeout), pool.connection(timeout=1):
                pass
        with pool.connection(timeout=60) as conn:
            assert conn.execute("SELECT sum(n) FROM kept").fetchone()[0] == 3


# ---------------------------------------------------------------------------- S3

def test_s3_round_trip_with_boto3_from_the_standard_aws_variables(s3_server, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")  # endpoint and credentials from AWS_* only
    s3.create_bucket(Bucket="round-trip")
    body = os.urandom(5 * 2**20 + 7)  # past the filer's 4 MB chunk size
    s3.put_object(Bucket="round-trip", Key="models/a.joblib", Body=body)
    s3.put_object(Bucket="round-trip", Key="uploads/b.txt", Body=b"x")

    assert s3.get_object(Bucket="round-trip", Key="models/a.joblib")["Body"].read() == body
    listed = s3.list_objects_v2(Bucket="round-trip", Prefix="models/")["Contents"]
    assert [(item["Key"], item["Size"]) for item in listed] == [("models/a.joblib", len(body))]

    s3.delete_object(Bucket="round-trip", Key="models/a.joblib")
    remaining = s3.list_objects_v2(Bucket="round-trip").get("Contents", [])
    assert [item["Key"] for item in remaining] == ["uploads/b.txt"]


def test_s3_refuses_a_wrong_secret(s3_server):
    intruder = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=s3_server.access_key,
                            aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as refused:
        intruder.list_buckets()
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_s3_keeps_objects_across_a_stop_and_start(s3_server):
    s3 = s3_server.client()
    s3.create_bucket(Bucket="restart-check")
    s3.put_object(Bucket="restart-check", Key="kept", Body=b"still here")
    with s3_server.stopped():
        assert s3_server.pid is None
        with pytest.raises(EndpointConnectionError):
            s3.get_object(Bucket="restart-check", Key="kept")
    assert s3.get_object(Bucket="restart-check", Key="kept")["Body"].read() == b"still here"


# ---------------------------------------------------------------------------- Dask

def test_dask_map_partitions_runs_on_the_external_worker_processes(dask_cluster):
    expected = frame(10_000)
    with Client(dask_cluster.address, timeout=60) as client:
        ddf = dd.from_pandas(expected, npartitions=8)
        result = client.compute(ddf.map_partitions(double, meta=meta())).result(timeout=120)
    pd.testing.assert_series_equal(result["y"], expected["x"] * 2, check_names=False)
    worker_pids = {dask_cluster.worker_pid(i) for i in range(dask_cluster.n_workers)}
    assert set(result["pid"]) <= worker_pids


def test_dask_job_completes_when_a_worker_is_killed_mid_job(dask_cluster):
    expected = frame(2_000)
    victim = dask_cluster.worker_name(1)
    try:
        with Client(dask_cluster.address, timeout=60) as client:
            names = {addr: info["name"]
                     for addr, info in client.scheduler_info(n_workers=-1)["workers"].items()}
            ddf = dd.from_pandas(expected, npartitions=12)
            future = client.compute(ddf.map_partitions(double, 0.5, meta=meta()))
            # Kill only once both workers hold tasks, so the victim dies with work in hand.
            poll(lambda: sum(bool(keys) for keys in client.processing().values()) == 2,
                 "both workers busy", deadline=60, interval=0.05)
            busy = {names[addr] for addr, keys in client.processing().items() if keys}
            assert victim in busy
            dask_cluster.kill_worker(1)
            result = future.result(timeout=120)
            survivors = {info["name"] for info in
                         client.scheduler_info(n_workers=-1)["workers"].values()}
        pd.testing.assert_series_equal(result["y"], expected["x"] * 2, check_names=False)
        assert survivors == {dask_cluster.worker_name(0)}
        assert set(result["pid"]) <= {dask_cluster.worker_pid(0)}
    finally:
        dask_cluster.start()  # the next test gets two workers again
