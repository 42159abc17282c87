"""Readers of connection records (KDD / NSL-KDD files, Zeek conn.logs; plain or gzip) into
ParsedRecords, refusing bad input with an InputFormatError that names line and column."""

from utils.readers.dispatch import (
    detect_input_kind,
    iter_identity,
    iter_parse_tasks,
    iter_record_chunks,
    read_records,
)
from utils.readers.records import (
    MAX_PROBLEMS,
    FeatureArrays,
    InputFormatError,
    ParsedRecords,
    ParseTask,
    normalise_label,
    number_rows,
)
from utils.readers.source import DEFAULT_MAX_DECOMPRESSED_BYTES

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "MAX_PROBLEMS",
    "FeatureArrays",
    "InputFormatError",
    "ParseTask",
    "ParsedRecords",
    "detect_input_kind",
    "iter_identity",
    "iter_parse_tasks",
    "iter_record_chunks",
    "normalise_label",
    "number_rows",
    "read_records",
]
