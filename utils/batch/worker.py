"""What a batch job runs on its Dask workers: reading pieces, the model cache, scoring, writing.

Every function here is a task: it takes small arguments (a Piece, a ModelRef, numbers) and
returns a table or a small tally, never the model. Tasks are idempotent (a piece's output
file has a fixed name and is written to a temp name, then renamed), so a task Dask reruns
after a worker died writes the same file again.

Data errors come back as values (PieceError), not exceptions: the job decides whether they
end it or skip the file, and one bad file must not look like a failed worker to Dask.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from utils.allowlist import AllowEntry
from utils.batch import s3_inputs
from utils.batch.allowed import apply_entries
from utils.batch.pieces import Piece
from utils.batch.readers import (
    InputFormatError,
    LoadedModel,
    ParsedRecords,
    ScoredRecords,
    ZeekLogReader,
    ecs_alerts,
    explain_in_chunks,
    kdd_records,
    load_scoring_model,
    model_file,
    score_in_chunks,
    to_ndjson,
    zeek_context_records,
)
from utils.batch.s3_inputs import S3InputError, is_s3
from utils.batch.summary import Tally, tally
from utils.model_store.kinds import KINDS

_HEAD_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n\v\f"
_BLANK_LINE = re.compile(rb"^[ \t\r\v\f]*\n", re.MULTILINE)
ZEEK_DIR, KDD_DIR, ALERTS_DIR = "zeek", "kdd", "alerts"
FILE_ROW = "_file_row"


@dataclass(frozen=True)
class ModelRef:
    """A model as tasks carry it: its folder and the SHA-256 of its model file."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Output:
    """Where and what a scoring task writes."""

    folder: str
    explain_all: bool = False  # top features of every record, not only of anomalies
    alerts: bool = False  # also ECS alerts (NDJSON) of the anomalies not allow-listed
    allow: tuple[AllowEntry, ...] = ()  # the allow-list entries in force when the job began


@dataclass
class PieceError:
    """A piece's bad input; lines counted from the piece's first line (1)."""

    piece: Piece
    error: InputFormatError


@dataclass
class Probe:
    """What the first pass learns of a piece: its size in lines and rows, and for Zeek the
    times of its rows and the reader's view of the format."""

    piece: Piece
    newlines: int
    rows: int
    ts: np.ndarray | None = None
    is_json: bool | None = None
    json_fields: frozenset[str] = frozenset()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the model, loaded once per worker process ---------------------------------------------

_MODELS: dict[str, LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


class ModelChangedError(RuntimeError):
    """The model file no longer has the hash the job started with."""


def worker_model(ref: ModelRef) -> LoadedModel:
    """The model ``ref`` names, loaded on this worker's first task that needs it and kept
    (keyed by hash, one per input kind) for every later one; a model file whose hash changed
    is refused, so one job never mixes two versions of a model."""
    with _MODELS_LOCK:
        model = _MODELS.get(ref.sha256)
        if model is None:
            found = sha256_file(model_file(ref.path))
            if found != ref.sha256:
                raise ModelChangedError(
                    f"{model_file(ref.path)} changed since the job started "
                    f"(sha256 {found[:12]}, expected {ref.sha256[:12]})")
            model = load_scoring_model(ref.path)
            while len(_MODELS) >= len(KINDS):  # a job's models: one per input kind
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[ref.sha256] = model
        return model


def loaded_models() -> list[str]:
    """Hashes of the models this worker process holds (for tests and diagnostics)."""
    return list(_MODELS)


# --- reading pieces ------------------------------------------------------------------------


def piece_bytes(piece: Piece) -> bytes:
    """The piece's lines (a gzip file: all of it, decompressed)."""
    if is_s3(piece.path):
        return _s3_piece_bytes(piece)
    if piece.gzip:
        try:
            with gzip.open(piece.path, "rb") as handle:
                return handle.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise InputFormatError("invalid_format", f"corrupt gzip data ({exc})") from None
    with open(piece.path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        start = _line_start(handle, piece.start, size)
        end = size if piece.end is None else _line_start(handle, piece.end, size)
        handle.seek(start)
        data = handle.read(max(0, end - start))
    return data.removeprefix(_BOM) if piece.start == 0 else data


def _s3_piece_bytes(piece: Piece) -> bytes:
    """The same lines as a local file's piece, from ranged reads of the S3 object."""
    if piece.gzip:
        try:
            return gzip.decompress(s3_inputs.read(piece.path))
        except (OSError, EOFError, zlib.error) as exc:
            raise InputFormatError("invalid_format", f"corrupt gzip data ({exc})") from None
    size = s3_inputs.size_of(piece.path)
    start = s3_inputs.line_start(piece.path, piece.start, size)
    end = size if piece.end is None else s3_inputs.line_start(piece.path, piece.end, size)
    data = s3_inputs.read(piece.path, start, end)
    return data.removeprefix(_BOM) if piece.start == 0 else data


def _line_start(handle, position: int, size: int) -> int:
    """The first line start at or after ``position``."""
    if position <= 0:
        return 0
    if position >= size:
        return size
    handle.seek(position - 1)
    handle.readline()  # just b"\n" when a line starts at ``position``
    return handle.tell()


@functools.lru_cache(maxsize=64)
def _file_head(path: str, mtime_ns: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(_HEAD_BYTES).removeprefix(_BOM)


def _head(piece: Piece) -> bytes:
    if is_s3(piece.path):
        url = piece.path
        return s3_inputs.head(url, s3_inputs.size_of(url), _HEAD_BYTES).removeprefix(_BOM)
    return _file_head(piece.path, os.stat(piece.path).st_mtime_ns)


def zeek_header(piece: Piece) -> bytes:
    """The comment lines at the top of the piece's file (a TSV log's directives)."""
    head = _head(piece)
    end = 0
    while end < len(head):
        stop = head.find(b"\n", end)
        stop = len(head) if stop < 0 else stop + 1
        line = head[end:stop]
        if line.strip() and not line.startswith(b"#"):
            break
        end = stop
    return head[:end]


def kdd_first_line(piece: Piece) -> tuple[bytes, bool]:
    """The first non-blank line of the piece's file, and whether it is a header."""
    head = _head(piece).lstrip(_BLANK)
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    return line, _is_kdd_header(line)


@functools.lru_cache(maxsize=64)
def _is_kdd_header(line: bytes) -> bool:
    try:
        kdd_records(line + b"\n")
    except InputFormatError as exc:
        return exc.error_type == "no_records"
    return False


def non_blank_lines(data: bytes) -> int:
    """Lines holding anything but white space (the KDD reader's records and header)."""
    if not data:
        return 0
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    blank = sum(1 for _ in _BLANK_LINE.finditer(data))
    last = data[data.rfind(b"\n") + 1:]
    if last and not last.strip():
        blank += 1
    return lines - blank


def probe(piece: Piece) -> Probe | PieceError:
    """The first pass over a piece: line and row counts, and a Zeek piece read in full
    (every value checked, so a bad file is known before any halo is planned)."""
    try:
        data = piece_bytes(piece)
        if piece.kind == "kdd":
            rows = non_blank_lines(data)
            if piece.index == 0 and _starts_with_header(data):
                rows -= 1
            return Probe(piece, data.count(b"\n"), rows)
        reader, table = _zeek_table(piece, data, None)
        ts = np.empty(0) if table is None else table["ts"].to_numpy(np.float64)
        return Probe(piece, data.count(b"\n"), len(ts), ts=ts, is_json=reader.is_json,
                     json_fields=frozenset(reader.json_fields))
    except InputFormatError as exc:
        return PieceError(piece, exc)
    except S3InputError as exc:  # the object vanished or the server went away since listing
        return PieceError(piece, InputFormatError(
            "unreadable", str(exc).removeprefix(f"{piece.path}: ")))


def _starts_with_header(data: bytes) -> bool:
    line = data.lstrip(_BLANK).split(b"\n", 1)[0].rstrip(b"\r")
    return _is_kdd_header(line)


@dataclass(frozen=True)
class ZeekFormat:
    """A stream's JSON field names (a JSON log's columns are the fields seen anywhere)."""

    json_fields: frozenset[str] = frozenset()


def _zeek_table(piece: Piece, data: bytes, fmt: ZeekFormat | None
                ) -> tuple[ZeekLogReader, pd.DataFrame | None]:
    reader = ZeekLogReader()
    if fmt is not None and fmt.json_fields:
        reader.json_fields = set(fmt.json_fields)
    if piece.index > 0:
        header = zeek_header(piece)
        if header:
            reader.connections(header, first_line=1, require=False)
    return reader, reader.connections(data, first_line=1, require=False)


def load_zeek(piece: Piece, fmt: ZeekFormat, first_stream_row: int,
              first_file_row: int) -> pd.DataFrame | None:
    """A Zeek piece's connection table, indexed by stream row, with each row's file row."""
    _, table = _zeek_table(piece, piece_bytes(piece), fmt)
    if table is None:
        return None
    table.index = pd.RangeIndex(first_stream_row, first_stream_row + len(table))
    table[FILE_ROW] = np.arange(first_file_row, first_file_row + len(table), dtype=np.int64)
    return table


def take_rows(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows another piece needs as window context."""
    return table.iloc[rows]


# --- scoring and writing --------------------------------------------------------------------


def score_zeek(table: pd.DataFrame | None, halos: list[pd.DataFrame], piece: Piece,
               stream: int, sensor: str, ref: ModelRef, output: Output) -> Tally:
    """Score a Zeek piece with its halo as window context; write it; its tally."""
    model = worker_model(ref)
    if table is None:
        return tally(piece, pd.DataFrame(), [], sensor=sensor)
    context = table
    if halos:
        context = pd.concat([table, *halos]).sort_index(kind="stable")
    wanted = np.isin(context.index.to_numpy(), table.index.to_numpy())
    records = zeek_context_records(context.drop(columns=FILE_ROW), wanted)
    _renumber(records, table[FILE_ROW].to_numpy())
    scored = apply_entries(output.allow, records, score_in_chunks(model, records))
    frame = _zeek_frame(piece, records, scored, model, output)
    written = []
    days = frame.pop("day")
    for day, part in frame.groupby(days, sort=True):
        folder = Path(output.folder, ZEEK_DIR, f"sensor={_safe(sensor)}", f"day={day}")
        written.append(_write_parquet(part, folder / f"part-{stream:03d}-{piece.name}.parquet"))
    if output.alerts:
        written.append(_write_alerts(model, records, scored, output,
                                     f"{_safe(sensor)}-{stream:03d}-{piece.name}"))
    frame["day"] = days
    return tally(piece, frame, written, sensor=sensor)


def score_kdd(piece: Piece, first_line: int, first_row: int, expected_rows: int,
              ref: ModelRef, output: Output) -> Tally | PieceError:
    """Parse, score and write a KDD piece; its tally, or the piece's bad input."""
    try:
        records = _kdd_piece(piece, expected_rows)
    except InputFormatError as exc:
        return PieceError(piece, exc)
    model = worker_model(ref)
    if len(records) == 0:
        return tally(piece, pd.DataFrame(), [])
    _renumber(records, np.arange(first_row, first_row + len(records), dtype=np.int64))
    scored = apply_entries(output.allow, records, score_in_chunks(model, records))
    frame = _common_frame(piece, records, scored, model, output)
    for name in ("protocol_type", "service", "flag"):
        frame.insert(2, name, records.features[name].to_numpy(dtype=object))
    written = [_write_parquet(frame, Path(output.folder, KDD_DIR,
                                          f"part-{piece.name}.parquet"))]
    if output.alerts:
        written.append(_write_alerts(model, records, scored, output, f"kdd-{piece.name}"))
    return tally(piece, frame, written)


def _kdd_piece(piece: Piece, expected_rows: int) -> ParsedRecords:
    data = piece_bytes(piece)
    if piece.index == 0:
        records = kdd_records(data)
    else:  # the file's first line fixes the layout, as it does for a whole-file read
        first, is_header = kdd_first_line(piece)
        try:
            records = kdd_records(first + b"\n" + data)
        except InputFormatError as exc:
            if exc.error_type == "no_records":
                return _empty_records()
            raise _shift_lines(exc, -1) from None
        if not is_header:
            records = _rows(records, slice(1, None))
    if len(records) != expected_rows:
        raise RuntimeError(f"{piece.path}: {len(records)} records in piece {piece.index}, "
                           f"the first pass counted {expected_rows}")
    return records


def _empty_records() -> ParsedRecords:
    return ParsedRecords(features=pd.DataFrame(), labels=None, difficulty=None)


def _rows(records: ParsedRecords, rows: slice) -> ParsedRecords:
    def part(frame):
        return None if frame is None else frame.iloc[rows]

    return ParsedRecords(features=part(records.features), labels=part(records.labels),
                         difficulty=part(records.difficulty), identity=part(records.identity),
                         input_kind=records.input_kind)


def _shift_lines(exc: InputFormatError, by: int) -> InputFormatError:
    problems = [dict(p, line=None if p.get("line") is None else p["line"] + by)
                for p in exc.problems]
    return InputFormatError(exc.error_type, problems=problems)


def shift_error(exc: InputFormatError, first_line: int) -> InputFormatError:
    """A piece's error with its lines counted in the whole file (the piece starts at
    ``first_line``)."""
    return _shift_lines(exc, first_line - 1)


def _renumber(records: ParsedRecords, rows: np.ndarray) -> None:
    index = pd.Index(rows)
    for frame in (records.features, records.labels, records.difficulty, records.identity):
        if frame is not None:
            frame.index = index


def _common_frame(piece: Piece, records: ParsedRecords, scored: ScoredRecords,
                  model: LoadedModel, output: Output) -> pd.DataFrame:
    n = len(records)
    frame = pd.DataFrame({
        "file": pd.Series([piece.path] * n, dtype=object),
        "row": records.features.index.to_numpy(np.int64),
    })
    if records.labels is not None:
        frame["label"] = records.labels.to_numpy(dtype=object)
    frame["score"] = scored.anomaly_score.astype(np.float64)
    frame["is_anomaly"] = scored.is_anomaly.astype(bool)
    allowed = scored.allowlisted
    frame["allowlisted"] = allowed != 0
    frame["allowlist_entry"] = pd.array(np.where(allowed != 0, allowed, None), dtype="Int64")
    frame["severity"] = scored.severity.astype(object)
    frame["confidence"] = scored.confidence.astype(np.float64)
    frame["votes"] = scored.votes.sum(axis=1).astype(np.int16)
    frame["top_features"] = _top_features(model, records, scored, output.explain_all)
    return frame


def _zeek_frame(piece: Piece, records: ParsedRecords, scored: ScoredRecords,
                model: LoadedModel, output: Output) -> pd.DataFrame:
    frame = _common_frame(piece, records, scored, model, output)
    identity = records.identity
    ts = identity["ts"].to_numpy(np.float64)
    columns = {
        "uid": identity["uid"].to_numpy(dtype=object), "ts": ts,
        "orig_h": identity["id.orig_h"].to_numpy(dtype=object),
        "orig_p": identity["id.orig_p"].to_numpy(np.int64),
        "resp_h": identity["id.resp_h"].to_numpy(dtype=object),
        "resp_p": identity["id.resp_p"].to_numpy(np.int64),
        "proto": records.features["protocol_type"].to_numpy(dtype=object),
        "service": identity["service"].to_numpy(dtype=object),
    }
    for position, (name, values) in enumerate(columns.items(), start=2):
        frame.insert(position, name, values)
    frame["day"] = utc_days(ts)
    return frame


def utc_days(ts: np.ndarray) -> np.ndarray:
    """Each epoch time's UTC date as YYYY-MM-DD."""
    days = np.floor(ts / 86400.0).astype(np.int64)
    unique, codes = np.unique(days, return_inverse=True)
    names = np.datetime_as_string(unique.astype("datetime64[D]"), unit="D").astype(object)
    return names[codes]


def _top_features(model: LoadedModel, records: ParsedRecords, scored: ScoredRecords,
                  every_record: bool) -> np.ndarray:
    """Each record's top contributing features as a JSON array (None where not explained:
    normal records, unless ``every_record``)."""
    out = np.full(len(records), None, dtype=object)
    rows = np.arange(len(records)) if every_record else np.flatnonzero(scored.is_anomaly)
    if rows.size:
        explained = explain_in_chunks(model, records.features.iloc[rows])
        out[rows] = [orjson.dumps(entry).decode() for entry in explained]
    return out


def _write_parquet(frame: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(temp, index=False, engine="pyarrow")
    os.replace(temp, path)
    return str(path)


def _write_alerts(model: LoadedModel, records: ParsedRecords, scored: ScoredRecords,
                  output: Output, name: str) -> str:
    path = Path(output.folder, ALERTS_DIR, f"{name}.ndjson")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(to_ndjson(ecs_alerts(model, records, scored)))
    os.replace(temp, path)
    return str(path)


def _safe(name: str) -> str:
    """A sensor name as one path component."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
