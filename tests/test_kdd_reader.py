"""The KDD record reader: every accepted variant and every refusal, with exact lines/columns."""

from __future__ import annotations

import contextlib
import gzip
import io
import pickle
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settings import load_settings
from utils.readers import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    InputFormatError,
    ParsedRecords,
    detect_input_kind,
    dispatch,
    iter_parse_tasks,
    iter_record_chunks,
    normalise_label,
    read_records,
)
from utils.readers.dispatch import _split_lines
from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES

REPO_ROOT = Path(__file__).resolve().parents[1]
FORCE_LINE_PASS = b"\r \n"  # a blank line with a lone CR: valid, but the fast path declines it


def make_row(label: str | None = "normal", difficulty: str | None = "21", **values: str):
    """One KDD record as a list of field strings (made-up values, not from the data set)."""
    fields = dict.fromkeys(NUMERIC_FEATURES, "0")
    fields |= {"protocol_type": "tcp", "service": "http", "flag": "SF", "src_bytes": "215",
               "dst_bytes": "45076", "count": "1", "same_srv_rate": "1.00"}
    fields |= values
    row = [fields[name] for name in FEATURE_NAMES]
    row += [value for value in (label, difficulty) if value is not None]
    return row


def make_file(rows, *, sep: str = ",", eol: str = "\n", header=None) -> bytes:
    lines = ([sep.join(header)] if header is not None else []) + [sep.join(r) for r in rows]
    return (eol.join(lines) + eol).encode()


def rows_with(line: int, **values: str) -> list[list[str]]:
    """Twenty valid rows, the one on (1-based) ``line`` changed."""
    rows = [make_row() for _ in range(20)]
    rows[line - 1] = make_row(**values)
    return rows


def refusal(data, **kwargs) -> InputFormatError:
    with pytest.raises(InputFormatError) as info:
        read_records(data, **kwargs)
    return info.value


def assert_same_records(left: ParsedRecords, right: ParsedRecords) -> None:
    pd.testing.assert_frame_equal(left.features, right.features, check_exact=True)
    for a, b in ((left.labels, right.labels), (left.difficulty, right.difficulty)):
        assert (a is None) == (b is None)
        if a is not None:
            pd.testing.assert_series_equal(a, b, check_exact=True)


# --- accepted variants ---------------------------------------------------------------------


def test_nsl_kdd_records_parse_into_the_model_layout():
    rows = [make_row(), make_row("neptune", "18", service="private", flag="REJ", src_bytes="0")]
    records = read_records(make_file(rows))

    assert len(records) == 2 and records.has_labels and records.input_kind == "kdd"
    assert list(records.features.columns) == list(FEATURE_NAMES)
    for name in CATEGORICAL_FEATURES:
        assert records.features[name].dtype == object
        assert all(type(value) is str for value in records.features[name])
    assert all(records.features[name].dtype == np.float64 for name in NUMERIC_FEATURES)
    assert records.features["service"].tolist() == ["http", "private"]
    assert records.features["src_bytes"].tolist() == [215.0, 0.0]
    assert records.features["same_srv_rate"].tolist() == [1.0, 1.0]
    assert records.labels.tolist() == ["normal", "neptune"]
    assert records.difficulty.dtype == np.int64 and records.difficulty.tolist() == [21, 18]
    assert records.identity is None


def test_tab_separated_records_parse_like_comma_separated():
    rows = [make_row(), make_row("smurf", "5", protocol_type="icmp")]
    assert_same_records(read_records(make_file(rows, sep="\t")), read_records(make_file(rows)))


@pytest.mark.parametrize(
    ("label", "difficulty", "has_labels", "has_difficulty"),
    [(None, None, False, False), ("normal", None, True, False), ("normal", "21", True, True)],
    ids=["41-features-only", "42-with-label", "43-with-difficulty"],
)
def test_label_and_difficulty_columns_are_optional(label, difficulty, has_labels, has_difficulty):
    records = read_records(make_file([make_row(label, difficulty)] * 3))

    assert records.has_labels is has_labels
    assert (records.labels is not None) is has_labels
    assert (records.difficulty is not None) is has_difficulty
    assert records.features.shape == (3, 41)


def test_header_columns_are_matched_by_name_in_any_order():
    names = [*reversed(FEATURE_NAMES), "Class", "notes", "difficulty_level"]
    values = dict(zip(FEATURE_NAMES, make_row(None, None, src_bytes="7"), strict=True))
    row = [values[name] for name in reversed(FEATURE_NAMES)] + ["Smurf.", "free text", "3"]
    header = [name.upper() if name == "duration" else name for name in names]

    records = read_records(make_file([row], header=header))

    expected = read_records(make_file([make_row("smurf", "3", src_bytes="7")]))
    assert_same_records(records, expected)


# Column names other exports use: the OpenML / datahub copy of KDD Cup 1999 (and CSVs written
# from scikit-learn's fetch_kddcup99 with its names) prefix eight content features with "l";
# the KDD Cup task description writes "is_hot_login".
FEATURE_ALIASES = [
    ("num_compromised", "lnum_compromised"), ("root_shell", "lroot_shell"),
    ("su_attempted", "lsu_attempted"), ("num_root", "lnum_root"),
    ("num_file_creations", "lnum_file_creations"), ("num_shells", "lnum_shells"),
    ("num_access_files", "lnum_access_files"), ("num_outbound_cmds", "lnum_outbound_cmds"),
    ("is_host_login", "is_hot_login"),
]
LABEL_ALIASES = ["label", "labels", "class", "attack", "outcome"]
DIFFICULTY_ALIASES = ["difficulty", "difficulty_level", "level"]


def spelled(name: str, case: str) -> str:
    return {"lower": name, "upper": name.upper(), "title": name.title()}[case]


@pytest.mark.parametrize("case", ["lower", "upper", "title"])
@pytest.mark.parametrize(("column", "alias"), FEATURE_ALIASES)
def test_header_may_name_a_feature_by_a_known_alias(column, alias, case):
    header = [spelled(alias, case) if name == column else name for name in FEATURE_NAMES]
    row = make_row(None, None, **{column: "3"})

    records = read_records(make_file([row], header=header))

    assert_same_records(records, read_records(make_file([row], header=[*FEATURE_NAMES])))
    assert records.features[column].tolist() == [3.0]


@pytest.mark.parametrize("case", ["lower", "upper", "title"])
@pytest.mark.parametrize("difficulty", DIFFICULTY_ALIASES)
@pytest.mark.parametrize("label", LABEL_ALIASES)
def test_header_may_name_label_and_difficulty_by_a_known_alias(label, difficulty, case):
    header = [*FEATURE_NAMES, spelled(label, case), spelled(difficulty, case)]
    rows = [make_row("normal.", "21"), make_row("Neptune", "7")]

    records = read_records(make_file(rows, header=header))

    assert records.labels.tolist() == ["normal", "neptune"]
    assert records.difficulty.tolist() == [21, 7]
    assert_same_records(records, read_records(make_file(rows)))


def test_a_csv_with_fetch_kddcup99_column_names_is_read():
    renamed = dict(FEATURE_ALIASES[:8])
    header = [renamed.get(name, name) for name in FEATURE_NAMES] + ["labels"]
    rows = [make_row("normal.", None, num_root="2"), make_row("smurf.", None, su_attempted="1")]

    records = read_records(make_file(rows, header=header))

    assert records.labels.tolist() == ["normal", "smurf"]
    assert records.features["num_root"].tolist() == [2.0, 0.0]
    assert records.features["su_attempted"].tolist() == [0.0, 1.0]
    assert records.difficulty is None


def test_a_column_and_its_alias_together_are_refused():
    header = [*FEATURE_NAMES, "lnum_root"]
    error = refusal(make_file([[*make_row(None, None), "0"]], header=header))
    assert error.error_type == "invalid_format"
    assert str(error) == "line 1: columns 'num_root' and 'lnum_root' both name the num_root"


def test_bom_crlf_blank_lines_and_padding_are_tolerated():
    rows = [[f"  {field} " for field in make_row()], make_row()]
    data = b"\xef\xbb\xbf\r\n" + make_file(rows, eol="\r\n\r\n")

    records = read_records(data)

    assert len(records) == 2
    assert records.features["protocol_type"].tolist() == ["tcp", "tcp"]
    assert records.features["src_bytes"].tolist() == [215.0, 215.0]
    assert records.labels.tolist() == ["normal", "normal"]


def test_header_after_bom_is_recognised():
    data = b"\xef\xbb\xbf" + make_file([make_row()], header=[*FEATURE_NAMES, "label", "difficulty"])
    assert read_records(data).labels.tolist() == ["normal"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("normal.", "normal"), (" Neptune ", "neptune"), ("SMURF.", "smurf"), ("ipsweep", "ipsweep")],
)
def test_labels_are_normalised(raw, expected):
    assert normalise_label(raw) == expected
    assert read_records(make_file([make_row(raw)])).labels.tolist() == [expected]


@pytest.mark.parametrize("raw", ["", " ", "?", "-", "."])
def test_unknown_labels_become_na(raw):
    records = read_records(make_file([make_row(raw), make_row()]))
    assert records.labels.iloc[0] is pd.NA
    assert records.labels.iloc[1] == "normal"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e300", 1e300), ("123456789012345678901234567890", 1.2345678901234568e29),
     ("+5", 5.0), ("-0", 0.0), (".5", 0.5), ("5.", 5.0), ("1E+3", 1000.0)],
)
def test_any_finite_non_negative_number_is_accepted(text, value):
    records = read_records(make_file([make_row(dst_bytes=text)]))
    assert records.features["dst_bytes"].tolist() == [value]


def test_gzip_input_is_detected_by_its_magic_bytes(tmp_path):
    plain = make_file([make_row(), make_row("back", "9")])
    path = tmp_path / "upload.txt"  # no .gz suffix: the content decides
    path.write_bytes(gzip.compress(plain))

    expected = read_records(plain)
    assert_same_records(read_records(path), expected)
    assert_same_records(read_records(str(path)), expected)
    assert_same_records(read_records(io.BytesIO(path.read_bytes())), expected)


def test_multi_member_gzip_is_read_to_the_end():
    first, second = make_file([make_row()]), make_file([make_row("back", "9")])
    records = read_records(gzip.compress(first) + gzip.compress(second))
    assert records.labels.tolist() == ["normal", "back"]


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_files_are_read_from_a_path(tmp_path, suffix):
    path = tmp_path / f"records{suffix}"
    path.write_bytes(make_file([make_row()] * 4))
    assert len(read_records(path)) == 4


def test_non_ascii_text_in_a_categorical_column_is_kept():
    records = read_records(make_file([make_row(service="sérvice")]))
    assert records.features["service"].tolist() == ["sérvice"]


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_input_is_refused(data):
    error = refusal(data)
    assert error.error_type == "empty_file"
    assert str(error) == "the file is empty"


def test_header_without_records_is_refused():
    error = refusal(make_file([], header=[*FEATURE_NAMES, "label"]) + b"\n\n")
    assert error.error_type == "no_records"


def test_wrong_field_count_names_the_line():
    rows = [make_row(), make_row(), make_row()[:12]]
    error = refusal(make_file(rows))
    assert error.error_type == "field_count"
    assert str(error) == "line 3: 12 fields, expected 41-43"
    assert error.problems == [{"line": 3, "column": None, "message": "12 fields, expected 41-43"}]


def test_field_count_must_match_the_first_record():
    error = refusal(make_file([make_row(), make_row(difficulty=None)]))
    assert str(error) == "line 2: 42 fields, expected 43, as on line 1"


def test_field_count_of_the_first_record_must_be_41_to_43():
    error = refusal(make_file([[*make_row(), "extra"]]))
    assert str(error) == "line 1: 44 fields, expected 41-43"


def test_field_count_must_match_the_header():
    header = [*FEATURE_NAMES, "label"]
    error = refusal(make_file([make_row(difficulty=None), make_row()], header=header))
    assert str(error) == "line 3: 43 fields, expected 42, as in the header"


def test_an_extra_field_on_the_first_record_after_the_header_is_refused():
    header = [*FEATURE_NAMES, "label", "difficulty"]
    error = refusal(make_file([[*make_row(), "0"], make_row()], header=header))
    assert str(error) == "line 2: 44 fields, expected 43, as in the header"


def test_an_extra_field_at_the_start_of_a_later_chunk_is_refused():
    data = make_file([make_row(), make_row(), [*make_row(), "0"], make_row()])
    with pytest.raises(InputFormatError) as info:
        list(iter_record_chunks(data, chunk_rows=2))
    assert str(info.value) == "line 3: 44 fields, expected 41-43"


def test_non_numeric_value_names_line_and_column():
    error = refusal(make_file(rows_with(17, src_bytes="abc")))
    assert error.error_type == "invalid_value"
    assert str(error) == "line 17, column src_bytes: 'abc' is not a number"
    assert error.problems == [
        {"line": 17, "column": "src_bytes", "message": "'abc' is not a number"}
    ]


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_non_finite_numbers_are_refused(text):
    error = refusal(make_file(rows_with(4, serror_rate=text)))
    assert error.error_type == "invalid_value"
    assert str(error) == f"line 4, column serror_rate: '{text}' is not a finite number"


@pytest.mark.parametrize("text", ["True", "false", "0x10", "1_000", "1e", "--1", "٥"])
def test_things_that_only_look_like_numbers_are_refused(text):
    error = refusal(make_file(rows_with(2, count=text)))
    assert str(error) == f"line 2, column count: {text!r} is not a number"


@pytest.mark.parametrize("text", ["True", "FALSE"])
def test_a_column_of_booleans_is_not_read_as_numbers(text):
    error = refusal(make_file([make_row(urgent=text)]))
    assert str(error) == f"line 1, column urgent: '{text}' is not a number"


def test_a_lone_carriage_return_does_not_end_a_line():
    data = make_file([make_row()]) + make_file([make_row(), make_row()], eol="\r")
    assert str(refusal(data)) == "line 2: 85 fields, expected 41-43"


def test_negative_values_are_refused():
    error = refusal(make_file(rows_with(5, duration="-1")))
    assert str(error) == "line 5, column duration: '-1' must not be negative"


@pytest.mark.parametrize("column", ["protocol_type", "service", "flag"])
def test_empty_categorical_value_is_refused(column):
    error = refusal(make_file(rows_with(2, **{column: "  "})))
    assert error.error_type == "invalid_value"
    assert str(error) == f"line 2, column {column}: empty value"


def test_empty_numeric_value_is_refused():
    error = refusal(make_file(rows_with(3, hot="")))
    assert str(error) == "line 3, column hot: empty value"


@pytest.mark.parametrize(
    ("text", "message"),
    [("1.5", "'1.5' is not a whole number"), ("x", "'x' is not a number"),
     ("-2", "'-2' must not be negative"), ("1e12", "'1e12' is out of range")],
)
def test_invalid_difficulty_is_refused(text, message):
    rows = [make_row(), make_row(difficulty=text)]
    assert str(refusal(make_file(rows))) == f"line 2, column difficulty: {message}"


def test_blank_lines_count_in_line_numbers():
    data = b"\n\n" + make_file([make_row(), make_row(flag="")], eol="\r\n\r\n")
    assert str(refusal(data)) == "line 5, column flag: empty value"


def test_several_problems_are_reported_up_to_five():
    rows = [make_row(src_bytes="a", dst_bytes="b")] + [make_row(land=str(-i)) for i in range(1, 9)]
    error = refusal(make_file(rows))

    assert [(p["line"], p["column"]) for p in error.problems] == [
        (1, "src_bytes"), (1, "dst_bytes"), (2, "land"), (3, "land"), (4, "land")
    ]
    assert str(error).startswith(
        "line 1, column src_bytes: 'a' is not a number; line 1, column dst_bytes: "
    )


def test_nul_bytes_are_refused_as_binary_data():
    data = make_file([make_row(), make_row()]) + b"\x00\x01\x02" + make_file([make_row()])
    error = refusal(data)
    assert error.error_type == "binary_data"
    assert error.problems[0]["line"] == 3


def test_control_characters_are_refused_as_binary_data():
    error = refusal(make_file(rows_with(6, service="ht\x1btp")))
    assert error.error_type == "binary_data"
    assert str(error) == "line 6: contains binary data (byte 0x1b)"


def test_invalid_utf8_names_the_line():
    data = make_file([make_row()] * 3) + b"0,tcp,\xff\xfe" + make_file([make_row()])[5:]
    error = refusal(data)
    assert error.error_type == "encoding"
    assert str(error) == "line 4: not valid UTF-8 text (byte 0xff)"


def test_a_tab_in_a_comma_separated_file_is_refused():
    rows = [make_row(), make_row()]
    data = make_file(rows) + "\t".join(make_row()).encode() + b"\n"
    error = refusal(data)
    assert error.error_type == "mixed_separators"
    assert str(error) == "line 3: contains a tab, but the file is comma-separated"


def test_a_comma_in_a_tab_separated_file_is_refused():
    data = make_file([make_row()], sep="\t") + make_file([make_row()])
    assert str(refusal(data)) == "line 2: contains a comma, but the file is tab-separated"


def test_a_first_line_with_both_separators_is_refused():
    error = refusal(b"0\t" + make_file([make_row()])[2:])
    assert error.error_type == "mixed_separators"
    assert str(error) == "line 1: mixes tabs and commas"


def test_header_missing_feature_columns_names_them():
    header = [name for name in FEATURE_NAMES if name not in ("land", "hot")]
    row = [value for name, value in zip(FEATURE_NAMES, make_row(None, None), strict=True)
           if name not in ("land", "hot")]
    error = refusal(make_file([row], header=header))
    assert error.error_type == "invalid_format"
    assert str(error) == "line 1: header lacks column(s) land, hot"


def test_header_with_a_column_twice_is_refused():
    header = [*FEATURE_NAMES, "label", "class"]
    error = refusal(make_file([make_row(difficulty="x")], header=header))
    assert str(error) == "line 1: columns 'label' and 'class' both name the label"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\x1f\x8b\x08\x00garbage-that-is-not-deflate", "corrupt gzip data"),
     (gzip.compress(make_file([make_row()]))[:-12], "gzip data is truncated")],
    ids=["corrupt", "truncated"],
)
def test_damaged_gzip_is_refused(data, message):
    error = refusal(data)
    assert error.error_type == "invalid_format"
    assert str(error).startswith(message)


def write_gzip_bomb(path, fill: bytes, gib: int) -> None:
    """``gib`` GiB of ``fill`` bytes, gzip'd to a few MB without ever holding them.

    Compressing 1 MiB ending in a full flush gives a self-contained deflate segment that can
    be repeated; the trailer is never reached, as the reader must stop long before.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(fill * (1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    with open(path, "wb") as handle:
        handle.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        for _ in range(gib * 1024):
            handle.write(segment)


def test_gzip_bomb_is_refused_once_the_bound_is_passed(tmp_path):
    bomb = tmp_path / "bomb.txt.gz"
    write_gzip_bomb(bomb, b"1", gib=2)
    tracemalloc.start()
    try:
        error = refusal(bomb, max_decompressed_bytes=16 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.error_type == "too_large"
    assert str(error) == "decompressed input exceeds the 16 MB limit"
    assert peak < 64 << 20


def test_decompression_bound_is_the_argument_never_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ANOMALYZE_MAX_DECOMPRESSED_MB", "lots")  # read at start-up, not here
    bomb = tmp_path / "bomb.gz"
    write_gzip_bomb(bomb, b"7", gib=1)
    assert str(refusal(bomb, max_decompressed_bytes=2 << 20)) == (
        "decompressed input exceeds the 2 MB limit")
    assert DEFAULT_MAX_DECOMPRESSED_BYTES >= 1 << 30


def test_plain_input_over_the_bound_is_refused():
    error = refusal(make_file([make_row()] * 100), max_decompressed_bytes=1000)
    assert error.error_type == "too_large"


def test_gzip_bomb_of_zeros_is_refused_as_binary_without_inflating_it(tmp_path):
    bomb = tmp_path / "zeros.gz"
    write_gzip_bomb(bomb, b"\x00", gib=2)
    tracemalloc.start()
    try:
        error = refusal(bomb)  # the default bound of 1 GiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(error) == "line 1: contains binary data (byte 0x00)"
    assert peak < 64 << 20


def test_chunked_reading_refuses_an_endless_line_with_bounded_memory(tmp_path):
    bomb = tmp_path / "one-line.gz"
    write_gzip_bomb(bomb, b"9", gib=1)
    with pytest.raises(InputFormatError) as info:
        list(iter_record_chunks(bomb))
    assert str(info.value) == "line 1: longer than 1 MB"


# --- chunked reading -----------------------------------------------------------------------


def test_chunks_cover_the_input_in_order_with_whole_file_row_numbers():
    rows = [make_row(src_bytes=str(i)) for i in range(25)]
    data = gzip.compress(make_file(rows, header=[*FEATURE_NAMES, "label", "difficulty"]))

    chunks = list(iter_record_chunks(io.BytesIO(data), chunk_rows=10))

    assert all(len(chunk) <= 10 for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == 25
    joined = pd.concat([chunk.features for chunk in chunks])
    pd.testing.assert_frame_equal(joined, read_records(data).features)
    assert joined.index.tolist() == list(range(25))


def test_chunk_errors_carry_whole_file_line_numbers():
    rows = rows_with(17, src_bytes="abc") + [make_row()] * 20
    data = make_file(rows, eol="\n\n")  # record 17 sits on line 33

    seen = []
    with pytest.raises(InputFormatError) as info:
        for chunk in iter_record_chunks(data, chunk_rows=8):
            seen.append(len(chunk))
    assert str(info.value) == "line 33, column src_bytes: 'abc' is not a number"
    assert sum(seen) == 16


@pytest.fixture
def tiny_pieces(monkeypatch):
    """Let a test file of a few rows be cut (real pieces are at least 256 KB)."""
    monkeypatch.setattr(dispatch, "_MIN_PIECE_BYTES", 1)


def test_small_chunks_are_not_cut_for_threads():
    data = make_file([make_row()] * 20)
    assert len(list(iter_parse_tasks(data, chunk_rows=100, pieces=4))) == 1


def test_pieces_for_threads_keep_whole_file_line_numbers(tiny_pieces):
    rows = rows_with(17, src_bytes="abc")
    data = make_file(rows, eol="\n\n")  # record 17 sits on line 33
    tasks = list(iter_parse_tasks(data, chunk_rows=100, pieces=3))
    assert len(tasks) == 3
    errors = []
    for task in tasks:
        try:
            task()
        except InputFormatError as exc:
            errors.append(str(exc))
    assert errors == ["line 33, column src_bytes: 'abc' is not a number"]


def test_pieces_of_blank_lines_are_not_tasks(tiny_pieces):
    data = make_file([make_row()] * 4) + b"\n" * 5000  # the last three quarters are blank
    tasks = list(iter_parse_tasks(data, chunk_rows=1000, pieces=4))
    assert len(tasks) == 1 and len(tasks[0]()) == 4


@pytest.mark.slow
@given(st.lists(st.binary(max_size=12).filter(lambda b: b"\n" not in b), max_size=30),
       st.integers(1, 6))
def test_cutting_for_threads_keeps_every_byte_and_cuts_at_line_ends(lines, pieces):
    chunk = b"\n".join(lines) * 30_000  # beyond the minimum piece size
    bounds = _split_lines(chunk, pieces)
    assert 1 <= len(bounds) <= pieces
    assert b"".join(chunk[a:b] for a, b in bounds) == chunk
    assert all(b > a and chunk[b - 1:b] == b"\n" for a, b in bounds[:-1])


@pytest.mark.parametrize("data", [b"", b"\n\n", make_file([], header=[*FEATURE_NAMES])])
def test_chunked_reading_refuses_empty_input(data):
    with pytest.raises(InputFormatError) as info:
        list(iter_record_chunks(data, chunk_rows=3))
    assert info.value.error_type in {"empty_file", "no_records"}


# --- Zeek hook -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [(b"#separator \\x09\n#set_separator\t,\n", "zeek_tsv"), (b"#fields\tts\tuid\n", "zeek_tsv"),
     (b"\n  {\"ts\": 1.0}\n", "zeek_json"), (b"\xef\xbb\xbf{\"ts\": 1}", "zeek_json"),
     (b"0,tcp,http,SF", "kdd"), (b"duration,protocol_type", "kdd"), (b"", "kdd")],
)
def test_input_kind_is_detected_from_the_first_bytes(head, kind):
    assert detect_input_kind(head) == kind


def test_a_broken_zeek_reader_stops_the_import_instead_of_refusing_uploads():
    """An import error in the Zeek modules must surface at start-up, not as a 400 per upload."""
    code = ("import sys; sys.modules['utils.readers.zeek_stream'] = None\n"
            "try:\n    import utils.readers\nexcept ImportError:\n    sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr


def test_zeek_logs_go_to_the_zeek_readers(monkeypatch):
    whole, streamed = [], []
    parsed = read_records(make_file([make_row()] * 5))

    def read_zeek_records(data: bytes) -> ParsedRecords:
        whole.append(data)
        return ParsedRecords(parsed.features, parsed.labels, None, input_kind="zeek")

    def iter_zeek_batches(open_chunks):
        streamed.append(b"".join(chunk for chunk, _ in open_chunks()))
        yield ParsedRecords(parsed.features, parsed.labels, None, input_kind="zeek",
                            numbered=True)

    monkeypatch.setattr(dispatch, "read_zeek_records", read_zeek_records)
    monkeypatch.setattr(dispatch, "iter_zeek_batches", iter_zeek_batches)
    log = b'{"ts": 1.0}\n{"ts": 2.0}\n'

    assert read_records(gzip.compress(log)).input_kind == "zeek"
    chunks = list(iter_record_chunks(gzip.compress(log), chunk_rows=2))
    assert whole == [log] and streamed == [log]
    assert [len(chunk) for chunk in chunks] == [5]  # numbered by the reader, not renumbered


# --- the error type itself -----------------------------------------------------------------


def test_input_format_error_survives_pickling():
    error = InputFormatError("invalid_value", "'x' is not a number", line=3, column="hot")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.error_type, copy.problems, str(copy)) == (
        error.error_type, error.problems, "line 3, column hot: 'x' is not a number"
    )


# --- properties ----------------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_input_format_error(data):
    with contextlib.suppress(InputFormatError):
        read_records(data)


VALID_ROW = ",".join(make_row())


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, len(VALID_ROW)),
    st.text(alphabet=",\t\r\n .-+e0123456789aN\x00é", max_size=8),
)
def test_damaged_records_parse_or_raise_input_format_error(position, junk):
    line = VALID_ROW[:position] + junk + VALID_ROW[position:]
    data = f"{VALID_ROW}\n{line}\n{VALID_ROW}\n".encode()
    try:
        records = read_records(data)
    except InputFormatError as error:
        last_line = 4 + junk.count("\n")
        assert error.problems
        assert all(p["line"] is None or 1 <= p["line"] <= last_line for p in error.problems)
    else:
        assert len(records) >= 3


numbers = st.one_of(
    st.integers(0, 10**15).map(str),
    st.integers(0, 10**6).map(lambda n: f"{n / 100:.2f}"),
    st.sampled_from(["0", "1.", ".25", "+3", "1e3", "2.5E-2", "007", " 4 ", "-0"]),
)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ABC0123456789 é", min_size=1, max_size=8)
record = st.fixed_dictionaries(
    {name: (words.filter(str.strip) if name in CATEGORICAL_FEATURES else numbers)
     for name in FEATURE_NAMES}
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    st.lists(record, min_size=1, max_size=6),
    st.lists(st.sampled_from(["normal", "Normal.", "", "?", "neptune", " Smurf "]),
             min_size=6, max_size=6),
    st.sampled_from([",", "\t"]),
    st.booleans(),
    st.sampled_from(["\n", "\r\n"]),
)
def test_fast_path_and_line_pass_agree_on_valid_input(rows, labels, sep, header, eol):
    lines = [[r[name] for name in FEATURE_NAMES] + [labels[i], str(i)] for i, r in enumerate(rows)]
    names = [*FEATURE_NAMES, "label", "difficulty"] if header else None
    data = make_file(lines, sep=sep, eol=eol, header=names)

    fast = read_records(data)
    line_pass = read_records(data + FORCE_LINE_PASS)

    assert_same_records(fast, line_pass)
    assert len(fast) == len(rows)
    if fast.arrays is not None:  # the fast path read it (not the line pass)
        assert_arrays_match_features(fast)


def assert_arrays_match_features(records: ParsedRecords) -> None:
    arrays = records.arrays
    np.testing.assert_array_equal(
        arrays.numeric, records.features[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64))
    for name in CATEGORICAL_FEATURES:
        assert (arrays.values[name][arrays.codes[name]] == records.features[name].to_numpy()).all()


def test_the_fast_path_gives_the_features_as_arrays_too():
    plain = read_records(make_file([make_row(), make_row("neptune", flag="S0")]))
    padded = make_file([make_row(src_bytes=" 215 ", service=" http"), make_row(count="\v3")])
    for records in (plain, read_records(padded)):
        assert_arrays_match_features(records)
    assert_same_records(read_records(padded), read_records(padded + FORCE_LINE_PASS))


# --- the real data set ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kdd_test_bytes() -> bytes:
    path = load_settings("tests")["NSLKDD_DIR"] / "KDDTest+.txt"
    if not path.is_file():
        pytest.skip(f"{path} not present (python -m utils.dataset fetches it)")
    return path.read_bytes()


def test_real_kdd_test_set_parses_completely(kdd_test_bytes):
    records = read_records(kdd_test_bytes)

    assert len(records) == 22_544
    assert (records.labels == "normal").sum() == 9_711
    assert records.labels.notna().all()
    assert records.difficulty.between(0, 21).all()
    assert records.features["protocol_type"].isin(["tcp", "udp", "icmp"]).all()


def test_real_rows_round_trip_through_csv_and_gzip(kdd_test_bytes):
    records = read_records(kdd_test_bytes)
    table = records.features.assign(label=records.labels, difficulty=records.difficulty)
    sample = table.iloc[::50]
    written = sample.to_csv(index=False, sep="\t", float_format="%.17g").encode()

    again = read_records(gzip.compress(written))

    pd.testing.assert_frame_equal(
        again.features, sample[list(FEATURE_NAMES)].reset_index(drop=True), check_exact=True
    )
    assert again.labels.tolist() == sample["label"].tolist()
    assert again.difficulty.tolist() == sample["difficulty"].tolist()


def test_real_data_reads_the_same_in_chunks(kdd_test_bytes):
    whole = read_records(kdd_test_bytes)
    chunks = list(iter_record_chunks(io.BytesIO(kdd_test_bytes), chunk_rows=5_000))
    assert [len(chunk) for chunk in chunks] == [5_000] * 4 + [2_544]
    pd.testing.assert_frame_equal(pd.concat([c.features for c in chunks]), whole.features)
