"""Taking rows of records and joining the records of several logs (a baseline of several
conn.logs)."""

import numpy as np
import pytest

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import FIELDS_UNLABELED, baseline_rows, tsv_log
from utils.readers import read_records
from utils.readers.records import concat_records, take_records


def test_taking_rows_keeps_their_numbers_and_every_part_aligned():
    records = read_records(tsv_log(baseline_rows(50)))
    taken = take_records(records, np.array([7, 3, 40]))
    assert list(taken.features.index) == list(taken.identity.index) == [7, 3, 40]
    assert list(taken.labels.index) == [7, 3, 40]
    mask = np.zeros(50, dtype=bool)
    mask[[1, 2]] = True
    assert len(take_records(records, mask)) == 2


def test_logs_join_into_one_renumbered_set_and_unlabeled_parts_are_unknown():
    labeled = read_records(tsv_log(baseline_rows(30, seed=1)))
    unlabeled = read_records(tsv_log(baseline_rows(20, seed=2, label=False), FIELDS_UNLABELED))
    joined = concat_records([labeled, unlabeled])
    assert len(joined) == 50 and joined.input_kind == "zeek"
    assert list(joined.identity.index) == list(range(50))
    assert joined.labels.iloc[:30].eq("normal").all()
    assert joined.labels.iloc[30:].isna().all()
    assert concat_records([unlabeled, unlabeled]).labels is None


def test_kinds_are_not_mixed_and_nothing_is_not_a_set():
    with pytest.raises(ValueError, match="mix"):
        concat_records([read_records(tsv_log(baseline_rows(5))),
                        read_records(synthetic_kdd(5, 1))])
    with pytest.raises(ValueError, match="no records"):
        concat_records([])
