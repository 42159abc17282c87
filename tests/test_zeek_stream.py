"""Large Zeek logs read in chunks: the same records as the whole log read at once."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest

from tests.helpers.zeek_logs import FIELDS, conn_rows, json_log, tsv_log
from utils.readers import (
    InputFormatError,
    ParsedRecords,
    iter_identity,
    iter_record_chunks,
    read_records,
    zeek_stream,
)
from utils.readers.zeek_stream import _trailing_max

ROWS = conn_rows(1500, long_seconds=2.0)  # about 800 rows in a connection's life


def chunked(data, chunk_rows: int) -> tuple[ParsedRecords, list[ParsedRecords]]:
    """The chunks' records put back in row order, and the chunks themselves."""
    parts = list(iter_record_chunks(data, chunk_rows=chunk_rows))

    def joined(frames):
        return None if frames[0] is None else pd.concat(frames).sort_index()

    whole = ParsedRecords(features=joined([p.features for p in parts]),
                          labels=joined([p.labels for p in parts]), difficulty=None,
                          identity=joined([p.identity for p in parts]), input_kind="zeek")
    return whole, parts


def assert_same_records(got: ParsedRecords, expected: ParsedRecords) -> None:
    pd.testing.assert_frame_equal(got.features, expected.features, check_index_type=False)
    pd.testing.assert_frame_equal(got.identity, expected.identity, check_index_type=False)
    if expected.labels is None:
        assert got.labels is None
    else:
        pd.testing.assert_series_equal(got.labels, expected.labels, check_index_type=False)


@pytest.mark.slow
@pytest.mark.parametrize("make", [tsv_log, json_log], ids=["tsv", "json"])
@pytest.mark.parametrize("pack", [bytes, gzip.compress], ids=["plain", "gzip"])
def test_chunked_log_gives_the_whole_log_records_row_for_row(make, pack):
    data = make(ROWS)
    whole = read_records(data)
    ts = np.sort(whole.identity["ts"].to_numpy())
    # 2-second windows reach past their 511-connection cap, so chunks of 250 lines cut
    # through both windows (the host window is the last 255 connections)
    assert (np.arange(len(ts)) - np.searchsorted(ts, ts - 2.0)).max() > 511
    got, parts = chunked(pack(data), chunk_rows=250)
    assert len(parts) == 6
    rows = np.sort(np.concatenate([part.features.index.to_numpy() for part in parts]))
    np.testing.assert_array_equal(rows, np.arange(len(ROWS)))  # every row once
    assert_same_records(got, whole)


@pytest.mark.slow
def test_rows_finished_together_are_derived_in_smaller_batches_with_the_same_result(
        monkeypatch):
    monkeypatch.setattr(zeek_stream, "BATCH_ROWS", 97)
    got, parts = chunked(tsv_log(ROWS), chunk_rows=400)
    assert max(len(part) for part in parts) == 97
    assert_same_records(got, read_records(tsv_log(ROWS)))


@pytest.mark.slow
@pytest.mark.parametrize("chunk_rows", [3, 7, 13])
def test_any_chunk_size_gives_the_same_records_for_late_and_tied_rows(chunk_rows):
    rows = conn_rows(50, seed=3, rate=20, long_share=0.2, long_seconds=3)
    data = tsv_log(rows)
    got, _ = chunked(data, chunk_rows)
    assert_same_records(got, read_records(data))


@pytest.mark.slow
def test_chunk_boundaries_inside_the_2_second_and_the_255_connection_windows():
    # one host, 10 connections per second: both windows hold every earlier row in reach,
    # and chunks of 40 lines cut through each of them
    rows = conn_rows(700, seed=5, rate=10, resp_hosts=1, long_share=0.0)
    data = tsv_log(rows)
    whole = read_records(data)
    assert whole.features["dst_host_count"].iloc[-1] == 255
    assert whole.features["count"].max() > 15
    got, parts = chunked(data, chunk_rows=40)
    assert len(parts) > 10
    assert_same_records(got, whole)


def test_a_connection_logged_long_after_its_start_still_counts_for_the_rows_after_it():
    rows = conn_rows(400, seed=9, rate=50, resp_hosts=1, long_share=0.0)
    late = list(rows[10])
    late[FIELDS.index("ts")] = f"{float(rows[0][0]) + 0.001:.3f}"
    data = tsv_log([*rows, late])  # starts with the first rows, logged last
    whole = read_records(data)
    got, parts = chunked(data, chunk_rows=50)
    assert_same_records(got, whole)
    assert 400 in parts[-1].features.index  # the late row is finished last
    assert parts[0].features.index.max() < 400


@pytest.mark.slow
def test_a_log_too_far_out_of_order_is_refused_as_too_large(monkeypatch):
    # held at once: a chunk, the 510 rows before it in time, and the rows that wait
    monkeypatch.setattr(zeek_stream, "MAX_HELD_ROWS", 700)
    rows = conn_rows(1000, seed=2, rate=100, long_share=0.0)
    early = list(rows[0])
    early[FIELDS.index("ts")] = f"{float(rows[0][0]) - 100:.3f}"
    with pytest.raises(InputFormatError) as caught:
        list(iter_record_chunks(tsv_log([*rows, early]), chunk_rows=100))
    assert caught.value.error_type == "too_large"
    assert "out of time order" in str(caught.value)
    assert len(list(iter_record_chunks(tsv_log(rows), chunk_rows=100))) > 1  # in order: fine


def test_a_log_of_more_rows_than_one_upload_may_hold_is_refused_as_too_large(monkeypatch):
    monkeypatch.setattr(zeek_stream, "MAX_ROWS", 500)
    with pytest.raises(InputFormatError, match="more than 500 records") as caught:
        list(iter_record_chunks(tsv_log(ROWS[:501]), chunk_rows=100))
    assert caught.value.error_type == "too_large"
    assert len(pd.concat(p.features for p in iter_record_chunks(tsv_log(ROWS[:500]),
                                                                chunk_rows=100))) == 500


def test_bad_value_in_a_later_chunk_names_its_line_in_the_whole_file():
    rows = [list(row) for row in ROWS[:300]]
    rows[250][FIELDS.index("id.resp_p")] = "eighty"
    with pytest.raises(InputFormatError) as caught:
        list(iter_record_chunks(tsv_log(rows), chunk_rows=100))
    assert caught.value.problems[0]["line"] == 7 + 251  # 7 header lines
    assert caught.value.problems[0]["column"] == "id.resp_p"


def test_json_field_seen_only_in_a_later_chunk_is_a_column_of_the_whole_log():
    rows = conn_rows(300, seed=4)
    no_service = [[*row[:7], "-", *row[8:]] for row in rows[:200]]
    data = json_log(no_service + rows[200:])
    got, _ = chunked(data, chunk_rows=50)
    assert_same_records(got, read_records(data))


def test_header_directive_changed_after_the_first_record_is_refused():
    data = tsv_log(ROWS[:20]).replace(b"#close", b"#unset_field\t?\n#close")
    with pytest.raises(InputFormatError, match="#unset_field changes after the first record"):
        read_records(data)
    with pytest.raises(InputFormatError, match="#unset_field changes after the first record"):
        list(iter_record_chunks(data, chunk_rows=5))


def test_a_pipe_is_read_through_a_temp_file():
    data = tsv_log(ROWS[:400])

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.source = io.BytesIO(gzip.compress(data))

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.source.read(len(buffer))
            buffer[:len(chunk)] = chunk
            return len(chunk)

    got, _ = chunked(Pipe(), chunk_rows=100)
    assert_same_records(got, read_records(data))


def test_identity_read_again_is_the_records_identity_in_row_order():
    data = gzip.compress(json_log(ROWS))
    identity = pd.concat(iter_identity(data, chunk_rows=333), ignore_index=True)
    pd.testing.assert_frame_equal(identity, read_records(data).identity)


def test_trailing_max_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    for size in (0, 1, 7, 511, 512, 1300):
        values = rng.integers(0, 200, size).astype(np.uint8)
        for width in (1, 2, 5, 511, 600):
            expected = [values[max(0, p - width + 1):p + 1].max() for p in range(size)]
            np.testing.assert_array_equal(_trailing_max(values, width), expected)
