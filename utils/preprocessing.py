"""Read KDD / NSL-KDD connection records from uploads and files.

Every upload passes through here, so the reader has to be both fast and strict. The fast path
is pandas' C reader plus a few vectorised checks; whenever it balks, a line-by-line pass reads
the same bytes and is the one that decides: it either returns the same records or raises an
InputFormatError naming the first offending lines and columns. The fast path only accepts
input that the line pass would accept with the same values, so the two never disagree.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import BinaryIO

import numpy as np
import pandas as pd

from utils.schema import (
    CATEGORICAL_FEATURES,
    DIFFICULTY_COLUMN,
    FEATURE_NAMES,
    LABEL_COLUMN,
    N_FEATURES,
    NUMERIC_FEATURES,
)

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

DEFAULT_MAX_DECOMPRESSED_BYTES = 1 << 30
MAX_PROBLEMS = 5

_BLOCK = 1 << 20
_HEAD_BYTES = 1 << 16
_MAX_LINE_BYTES = 1 << 20
_MIN_PIECE_BYTES = 256 << 10  # about 1,700 KDD records
_MIN_ZEEK_PIECE_ROWS = 10_000  # a piece costs a few ms of fixed overhead (see _split_lines)
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_WS = " \t\r\n\v\f"  # what pandas' number parser skips around a value
_WS_BYTES = _WS.encode()
_NON_BLANK = re.compile(rb"[^ \t\r\n\v\f]")
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_BINARY_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
# Certainly valid fields, as bytes patterns: printable ASCII without either separator, numbers
# too short to overflow, difficulty below _MAX_DIFFICULTY.
_PLAIN_TEXT = rb"[\x20-\x2b\x2d-\x7e]*"
_PLAIN_NON_EMPTY_TEXT = rb" *[\x21-\x2b\x2d-\x7e][\x20-\x2b\x2d-\x7e]*"
_PLAIN_NUMBER = rb" *\+?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,2})? *"
_PLAIN_SMALL_INT = rb" *\+?[0-9]{1,9} *"
_LABEL_NAMES = ("label", "class", "attack")
_DIFFICULTY_NAMES = ("difficulty", "difficulty_level")
_KNOWN_COLUMNS = frozenset(FEATURE_NAMES) | frozenset(_LABEL_NAMES + _DIFFICULTY_NAMES)
_UNKNOWN_LABELS = frozenset({"", "?", "-"})
_MAX_DIFFICULTY = 2**31 - 1
_MIN_FIELDS, _MAX_FIELDS = N_FEATURES, N_FEATURES + 2


class InputFormatError(ValueError):
    """One exception for every invalid input; its message names the first offending lines/columns.

    ``error_type`` is the API's machine-readable code and ``problems`` (at most five) the
    structured form of the message, so the HTTP layer can pass both on unchanged.
    """

    def __init__(
        self,
        error_type: str,
        message: str | None = None,
        *,
        line: int | None = None,
        column: str | None = None,
        problems: Iterable[dict] | None = None,
    ) -> None:
        found = list(problems or [])
        if message is not None:
            found.insert(0, problem(line, column, message))
        if not found:
            raise TypeError("InputFormatError needs a message or problems")
        self.error_type = error_type
        self.problems: list[dict] = found[:MAX_PROBLEMS]
        super().__init__("; ".join(_describe(p) for p in self.problems))

    def __reduce__(self):
        return functools.partial(type(self), problems=self.problems), (self.error_type,)


def problem(line: int | None, column: str | None, message: str) -> dict:
    """One entry of InputFormatError.problems (shared with the Zeek reader)."""
    return {"line": line, "column": column, "message": message}


def _describe(entry: dict) -> str:
    where = []
    if entry.get("line") is not None:
        where.append(f"line {entry['line']}")
    if entry.get("column") is not None:
        where.append(f"column {entry['column']}")
    return f"{', '.join(where)}: {entry['message']}" if where else entry["message"]


@dataclass(frozen=True)
class FeatureArrays:
    """The features of ParsedRecords as the reader produced them, before any DataFrame.

    ``numeric`` (rows x NUMERIC_FEATURES, float64, column-major) holds the same values as the
    numeric columns of ``features``; each categorical is ``values[name][codes[name]]``. Feature
    preparation reads these directly (KDDFeatureTransformer.transform_arrays) instead of
    taking the DataFrame apart again and looking up every row's text.
    """

    numeric: np.ndarray
    codes: dict[str, np.ndarray]
    values: dict[str, np.ndarray]


@dataclass
class ParsedRecords:
    """Records in the model's layout, whatever file format they came from.

    ``features`` holds exactly schema.FEATURE_NAMES in order (categoricals as Python str in
    object columns, the rest float64). ``labels`` are normalised (pd.NA when unknown) or None
    when the input has no label column. The index is the 0-based data row of the whole input,
    also for chunks from iter_record_chunks. ``numbered``: the index already holds those row
    numbers, which need not be consecutive (a large Zeek log's rows come in time order).
    ``arrays``, when the reader filled it, is the same features as arrays; it is only valid
    as long as ``features`` is not modified.
    """

    features: pd.DataFrame
    labels: pd.Series | None
    difficulty: pd.Series | None
    identity: pd.DataFrame | None = None
    input_kind: str = "kdd"
    numbered: bool = False
    arrays: FeatureArrays | None = field(default=None, repr=False, compare=False)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.features)


def normalise_label(value: str) -> str:
    """KDD Cup 99 writes "normal." where NSL-KDD writes "normal"; both mean the same class."""
    return value.strip().lower().removesuffix(".").strip()


def _label_or_na(value: str):
    label = normalise_label(value)
    return pd.NA if label in _UNKNOWN_LABELS else label


def detect_input_kind(head: bytes) -> str:
    """Tell KDD records from Zeek logs by the first bytes of the (decompressed) content.

    Returns "kdd", "zeek_tsv" (``#separator``/``#fields`` header) or "zeek_json" (first
    non-blank line is a JSON object).
    """
    text = head.removeprefix(_BOM).lstrip(_WS_BYTES)
    if text.startswith((b"#separator", b"#fields")):
        return "zeek_tsv"
    if text.startswith(b"{"):
        return "zeek_json"
    return "kdd"


def read_records(
    source: Source, *, max_decompressed_bytes: int | None = None
) -> ParsedRecords:
    """Read a whole upload or file (plain or gzip) into memory and parse it.

    ``source`` is a path, the content as bytes, or a binary file object. The content
    (decompressed, if gzip) may be at most ``max_decompressed_bytes`` long (default
    DEFAULT_MAX_DECOMPRESSED_BYTES).
    """
    limit = _resolve_limit(max_decompressed_bytes)
    head, blocks = _peek(_content_blocks(source, limit), _HEAD_BYTES)
    kind = detect_input_kind(head)
    if kind == "kdd":
        _refuse_binary_head(head)
    data = b"".join(blocks)
    if kind != "kdd":
        return _read_zeek(data.removeprefix(_BOM))
    reader = _KddReader()
    body = reader.prepare(data.removeprefix(_BOM), first_line=1)
    reader.finish()
    assert body is not None  # finish() refuses an input without records
    return reader.parse_piece(*body, 0, len(body[0]))


def iter_record_chunks(
    source: Source, *, chunk_rows: int = 100_000, max_decompressed_bytes: int | None = None
) -> Iterator[ParsedRecords]:
    """Parse a large input in chunks of at most ``chunk_rows`` rows.

    Memory stays bounded by the chunk size (the input is streamed and decompressed as it is
    read). Validation is the same as read_records and line numbers in errors are those of
    the whole file, but an error in a later chunk is only raised once the earlier chunks have
    been yielded: a caller that must be all-or-nothing should hold back results until the end.
    KDD chunks come in file order; a Zeek log's rows come in time order, in batches of rows
    that need not be consecutive in the file (utils/zeek_stream.py): the index tells.
    """
    rows = 0
    for task in iter_parse_tasks(
            source, chunk_rows=chunk_rows, max_decompressed_bytes=max_decompressed_bytes):
        records = number_rows(task(), rows)
        rows += len(records)
        yield records


ParseTask = Callable[[], ParsedRecords]


def iter_parse_tasks(
    source: Source,
    *,
    chunk_rows: int = 100_000,
    max_decompressed_bytes: int | None = None,
    pieces: int = 1,
) -> Iterator[ParseTask]:
    """The input as parse tasks, in order, for parsing on several threads.

    The source is read (and checked for layout, size and emptiness) here, in order; each
    chunk of at most ``chunk_rows`` lines is cut into ``pieces`` tasks of about equal size.
    A task may run on any thread and raises the chunk's InputFormatError, with whole-file
    line numbers. Its rows are numbered from 0: number_rows renumbers them. A Zeek log is
    parsed here, batch by batch (utils/zeek_stream.py, which may read the source three
    times: a file object must be seekable, or it is copied to a temp file); its tasks only
    cut the batches, whose rows are numbered already.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    limit = _resolve_limit(max_decompressed_bytes)
    start = source.tell() if _is_file(source) and source.seekable() else None
    content = _content_blocks(source, limit)
    head, blocks = _peek(content, _HEAD_BYTES)
    _refuse_binary_head(head)
    if detect_input_kind(head) != "kdd":
        if _is_file(source) and start is None:  # a pipe: keep it to read it more than once
            with tempfile.TemporaryFile() as spool:
                for block in blocks:
                    spool.write(block)
                yield from _zeek_tasks(spool, 0, limit, chunk_rows, pieces)
            return
        content.close()
        yield from _zeek_tasks(source, start, limit, chunk_rows, pieces)
        return
    reader = _KddReader()
    line = 1
    for chunk, newlines in _line_chunks(_strip_bom(blocks), chunk_rows):
        body = reader.prepare(chunk, first_line=line)
        line += newlines
        if body is not None:
            for start, end in _split_lines(body[0], pieces):
                if _NON_BLANK.search(body[0], start, end):
                    yield functools.partial(reader.parse_piece, *body, start, end)
    reader.finish()


def iter_identity(
    source: Source, *, chunk_rows: int = 100_000, max_decompressed_bytes: int | None = None
) -> Iterator[pd.DataFrame]:
    """A Zeek upload's identity columns, in file order, chunk by chunk: for per-row output of
    an upload that has been parsed already (its records carry only what the model needs)."""
    from utils.zeek_stream import iter_zeek_identity

    blocks = _content_blocks(source, _resolve_limit(max_decompressed_bytes))
    yield from iter_zeek_identity(_line_chunks(_strip_bom(blocks), chunk_rows))


def _zeek_tasks(source: Source, start: int | None, limit: int, chunk_rows: int,
                pieces: int) -> Iterator[ParseTask]:
    """A Zeek log's batches (utils/zeek_stream.py reads the source up to three times), each
    cut into ``pieces`` tasks."""
    try:
        from utils.zeek_stream import iter_zeek_batches
    except ImportError:
        raise InputFormatError(
            "invalid_format", "Zeek logs are not supported by this server"
        ) from None

    def open_chunks() -> Iterator[tuple[bytes, int]]:
        if start is not None:
            source.seek(start)
        return _line_chunks(_strip_bom(_content_blocks(source, limit)), chunk_rows)

    for records in iter_zeek_batches(open_chunks):
        size = max(-(-len(records) // pieces), _MIN_ZEEK_PIECE_ROWS)
        for first in range(0, len(records), size):
            yield functools.partial(_slice_records, records, first, first + size)


def _is_file(source: Source) -> bool:
    return hasattr(source, "read")


def number_rows(records: ParsedRecords, start: int) -> ParsedRecords:
    """Number a part's rows from ``start`` (its 0-based row in the whole input), in place,
    unless they are numbered already."""
    if start and not records.numbered:
        index = pd.RangeIndex(start, start + len(records))
        for frame in (records.features, records.labels, records.difficulty, records.identity):
            if frame is not None:
                frame.index = index
    return records


def _split_lines(chunk: bytes, pieces: int) -> list[tuple[int, int]]:
    """Offsets that cut a chunk at line ends into at most ``pieces`` parts of about equal size.

    No part is made smaller than _MIN_PIECE_BYTES: a piece costs a few ms of fixed overhead,
    which would make small uploads slower on two threads than on one (measured: 1,000 rows
    took 16 ms in two pieces, 8 ms in one).
    """
    pieces = max(1, min(pieces, len(chunk) // _MIN_PIECE_BYTES))
    bounds = [0]
    for i in range(1, max(1, pieces)):
        cut = chunk.find(b"\n", max(bounds[-1], len(chunk) * i // pieces)) + 1
        if cut <= 0 or cut >= len(chunk):
            break
        bounds.append(cut)
    bounds.append(len(chunk))
    return list(itertools.pairwise(bounds))


# --- reading and decompressing the source -------------------------------------------------


def _resolve_limit(max_decompressed_bytes: int | None) -> int:
    if max_decompressed_bytes is not None:
        return max_decompressed_bytes
    return DEFAULT_MAX_DECOMPRESSED_BYTES


def _too_large(limit: int, compressed: bool) -> InputFormatError:
    what = "decompressed input" if compressed else "input"
    return InputFormatError("too_large", f"{what} exceeds the {limit / (1 << 20):g} MB limit")


def _raw_blocks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        # in blocks, as from a file: _line_chunks scans each block it cuts from
        view = memoryview(source).cast("B")
        for start in range(0, len(view), _BLOCK):
            yield bytes(view[start:start + _BLOCK])
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            yield from _read_blocks(handle)
    elif hasattr(source, "read"):
        yield from _read_blocks(source)
    else:
        raise TypeError(f"expected a path, bytes or a binary file, got {type(source).__name__}")


def _read_blocks(handle: BinaryIO) -> Iterator[bytes]:
    while block := handle.read(_BLOCK):
        if isinstance(block, str):
            raise TypeError("expected a binary file object, got a text one")
        yield bytes(block)


def _content_blocks(source: Source, limit: int) -> Iterator[bytes]:
    """The decompressed content in blocks; raises "too_large" as soon as it passes ``limit``."""
    raw = _raw_blocks(source)
    first = b""
    for block in raw:
        first += block
        if len(first) >= len(_GZIP_MAGIC):
            break
    blocks = chain([first], raw)
    if first.startswith(_GZIP_MAGIC):
        yield from _gunzip(blocks, limit)
        return
    total = 0
    for block in blocks:
        total += len(block)
        if total > limit:
            raise _too_large(limit, compressed=False)
        yield block


def _gunzip(blocks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Stream-decompress (possibly multi-member) gzip, never holding more than one block."""
    decompressor = zlib.decompressobj(wbits=31)
    total = 0
    try:
        for block in blocks:
            pending = block
            while pending:
                if decompressor.eof:
                    if not pending.strip(b"\x00"):
                        break  # zero padding after the last member, as gzip(1) tolerates
                    decompressor = zlib.decompressobj(wbits=31)
                out = decompressor.decompress(pending, _BLOCK)
                left = decompressor.unused_data if decompressor.eof else (
                    decompressor.unconsumed_tail
                )
                if not out and len(left) == len(pending) and not decompressor.eof:
                    raise InputFormatError("invalid_format", "corrupt gzip data")
                pending = left
                total += len(out)
                if total > limit:
                    raise _too_large(limit, compressed=True)
                if out:
                    yield out
        while not decompressor.eof:  # inflate may still hold output for input it has taken
            out = decompressor.decompress(b"", _BLOCK)
            if not out:
                break
            total += len(out)
            if total > limit:
                raise _too_large(limit, compressed=True)
            yield out
    except zlib.error as exc:
        raise InputFormatError("invalid_format", f"corrupt gzip data ({exc})") from None
    if not decompressor.eof:
        raise InputFormatError("invalid_format", "gzip data is truncated")


def _peek(blocks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    parts: list[bytes] = []
    length = 0
    for block in blocks:
        parts.append(block)
        length += len(block)
        if length >= size:
            break
    head = b"".join(parts)
    return head, chain([head], blocks)


def _strip_bom(blocks: Iterator[bytes]) -> Iterator[bytes]:
    first = next(blocks, b"")
    yield first.removeprefix(_BOM)
    yield from blocks


def _line_chunks(blocks: Iterator[bytes], max_lines: int) -> Iterator[tuple[bytes, int]]:
    """Regroup blocks into pieces of at most ``max_lines`` whole lines (and their line count).

    A line longer than _MAX_LINE_BYTES is refused, or one endless line would defeat the
    point of reading in chunks.
    """
    parts: list[bytes] = []
    lines = done = line_bytes = 0
    for block in _at_most_a_block(blocks):
        while block:
            count = block.count(b"\n")
            if count and line_bytes + block.find(b"\n") > _MAX_LINE_BYTES:
                # a line begun in earlier blocks, ending in this one
                message = f"longer than {_MAX_LINE_BYTES >> 20} MB"
                raise InputFormatError("invalid_format", message, line=done + lines + 1)
            if lines + count < max_lines:
                parts.append(block)
                lines += count
                line_bytes = line_bytes + len(block) if not count else (
                    len(block) - block.rfind(b"\n") - 1
                )
                if line_bytes > _MAX_LINE_BYTES:
                    message = f"longer than {_MAX_LINE_BYTES >> 20} MB"
                    raise InputFormatError("invalid_format", message, line=done + lines + 1)
                break
            newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
            cut = int(newlines[max_lines - lines - 1]) + 1
            parts.append(block[:cut])
            yield b"".join(parts), max_lines
            parts, lines, line_bytes, block = [], 0, 0, block[cut:]
            done += max_lines
    if parts:
        yield b"".join(parts), lines


def _at_most_a_block(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The blocks, those longer than _BLOCK cut into _BLOCK-sized ones.

    _line_chunks copies what follows each cut; an input given as one bytes object (a file
    read whole) would otherwise be copied again from every cut to its end: quadratic time
    (500,000 rows took 37x the CPU time of 22,544) and a second copy of it in memory.
    """
    for block in blocks:
        if len(block) <= _BLOCK:
            yield block
            continue
        view = memoryview(block)
        for start in range(0, len(block), _BLOCK):
            yield bytes(view[start:start + _BLOCK])


def _refuse_binary_head(head: bytes) -> None:
    """Refuse NUL bytes at once, before a huge binary upload is decompressed in full."""
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise InputFormatError("binary_data", "contains binary data (byte 0x00)", line=line)


def _read_zeek(data: bytes) -> ParsedRecords:
    try:
        from utils.zeek import read_zeek_records
    except ImportError:
        raise InputFormatError(
            "invalid_format", "Zeek logs are not supported by this server"
        ) from None
    return read_zeek_records(data)


def _slice_records(records: ParsedRecords, start: int, stop: int) -> ParsedRecords:
    def part(frame):
        return None if frame is None else frame.iloc[start:stop]

    return ParsedRecords(
        features=part(records.features),
        labels=part(records.labels),
        difficulty=part(records.difficulty),
        identity=part(records.identity),
        input_kind=records.input_kind,
        numbered=records.numbered,
    )


# --- the layout of a KDD file --------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where each column sits, fixed by the header or by the first data line."""

    sep: str
    n_fields: int
    feature_pos: tuple[int, ...]  # file position of each of FEATURE_NAMES
    label_pos: int | None
    difficulty_pos: int | None
    header_line: int | None
    first_line: int

    @functools.cached_property
    def names(self) -> tuple[str | None, ...]:
        """Column name by file position (None for columns we ignore)."""
        names: list[str | None] = [None] * self.n_fields
        for name, pos in zip(FEATURE_NAMES, self.feature_pos, strict=True):
            names[pos] = name
        if self.label_pos is not None:
            names[self.label_pos] = LABEL_COLUMN
        if self.difficulty_pos is not None:
            names[self.difficulty_pos] = DIFFICULTY_COLUMN
        return tuple(names)

    @functools.cached_property
    def text_dtypes(self) -> dict[int, type]:
        """Columns pandas must keep as str: categoricals, label and ignored columns."""
        numeric = {self.feature_pos[FEATURE_NAMES.index(n)] for n in NUMERIC_FEATURES}
        if self.difficulty_pos is not None:
            numeric.add(self.difficulty_pos)
        return {pos: object for pos in range(self.n_fields) if pos not in numeric}

    @functools.cached_property
    def numeric_pos(self) -> tuple[int, ...]:
        """File position of each of NUMERIC_FEATURES."""
        return tuple(self.feature_pos[FEATURE_NAMES.index(n)] for n in NUMERIC_FEATURES)

    @property
    def other_sep(self) -> str:
        return "," if self.sep == "\t" else "\t"

    @functools.cached_property
    def plain_line(self) -> re.Pattern[bytes]:
        """Matches only lines that are certainly valid (printable ASCII, modest numbers).

        Lets the line pass skip the field-by-field checks on good lines, so finding the few
        bad lines in a large chunk stays cheap.
        """
        parts = []
        for name in self.names:
            if name in CATEGORICAL_FEATURES:
                parts.append(_PLAIN_NON_EMPTY_TEXT)
            elif name is None or name == LABEL_COLUMN:
                parts.append(_PLAIN_TEXT)
            elif name == DIFFICULTY_COLUMN:
                parts.append(_PLAIN_SMALL_INT)
            else:
                parts.append(_PLAIN_NUMBER)
        return re.compile(re.escape(self.sep.encode()).join(parts))

    def field_count_message(self, count: int) -> str:
        if self.header_line is not None:
            return f"{count} fields, expected {self.n_fields}, as in the header"
        if _MIN_FIELDS <= count <= _MAX_FIELDS:
            return f"{count} fields, expected {self.n_fields}, as on line {self.first_line}"
        return f"{count} fields, expected {_MIN_FIELDS}-{_MAX_FIELDS}"


def _line_text(raw: bytes, line: int) -> tuple[str | None, dict | None, str]:
    """Decode one physical line; (text, None, "") or (None, problem, error_type)."""
    found = _BINARY_BYTES.search(raw)
    if found:
        message = f"contains binary data (byte 0x{found.group()[0]:02x})"
        return None, problem(line, None, message), "binary_data"
    try:
        return raw.decode("utf-8"), None, ""
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 text (byte 0x{raw[exc.start]:02x})"
        return None, problem(line, None, message), "encoding"


def _detect_layout(raw: bytes, line: int) -> _Layout:
    text, found, error_type = _line_text(raw, line)
    if text is None:
        raise InputFormatError(error_type, problems=[found])
    if "\t" in text and "," in text:
        raise InputFormatError("mixed_separators", "mixes tabs and commas", line=line)
    sep = "\t" if "\t" in text else ","
    fields = [_column_key(field) for field in text.split(sep)]
    if fields[0] in _KNOWN_COLUMNS:
        return _header_layout(fields, sep, line)
    count = len(fields)
    if not _MIN_FIELDS <= count <= _MAX_FIELDS:
        raise InputFormatError(
            "field_count", f"{count} fields, expected {_MIN_FIELDS}-{_MAX_FIELDS}", line=line
        )
    return _Layout(
        sep=sep,
        n_fields=count,
        feature_pos=tuple(range(N_FEATURES)),
        label_pos=N_FEATURES if count > N_FEATURES else None,
        difficulty_pos=N_FEATURES + 1 if count > N_FEATURES + 1 else None,
        header_line=None,
        first_line=line,
    )


def _column_key(field: str) -> str:
    return field.strip(_WS).strip("\"'").strip(_WS).lower()


def _header_layout(names: list[str], sep: str, line: int) -> _Layout:
    canonical = {name: name for name in FEATURE_NAMES}
    canonical |= dict.fromkeys(_LABEL_NAMES, LABEL_COLUMN)
    canonical |= dict.fromkeys(_DIFFICULTY_NAMES, DIFFICULTY_COLUMN)
    positions: dict[str, int] = {}
    for pos, name in enumerate(names):
        column = canonical.get(name)
        if column is None:
            continue
        if column in positions:
            first = names[positions[column]]
            message = f"column '{name}' appears twice" if first == name else (
                f"columns '{first}' and '{name}' both name the {column}"
            )
            raise InputFormatError("invalid_format", message, line=line)
        positions[column] = pos
    missing = [name for name in FEATURE_NAMES if name not in positions]
    if missing:
        listed = ", ".join(missing[:8])
        if len(missing) > 8:
            listed += f" and {len(missing) - 8} more"
        raise InputFormatError("invalid_format", f"header lacks column(s) {listed}", line=line)
    return _Layout(
        sep=sep,
        n_fields=len(names),
        feature_pos=tuple(positions[name] for name in FEATURE_NAMES),
        label_pos=positions.get(LABEL_COLUMN),
        difficulty_pos=positions.get(DIFFICULTY_COLUMN),
        header_line=line,
        first_line=line,
    )


# --- parsing -------------------------------------------------------------------------------


class _KddReader:
    """Parses the consecutive line-aligned chunks of one KDD file.

    ``prepare`` runs on the chunks in order (the first one fixes the layout); ``parse_piece``
    only reads the layout, so the prepared bodies can be parsed on any thread.
    """

    def __init__(self) -> None:
        self.layout: _Layout | None = None
        self.has_records = False

    def prepare(self, chunk: bytes, first_line: int) -> tuple[bytes, int] | None:
        """The chunk's records part and its first line number; None if there is none."""
        if self.layout is None:
            start, first_line = _skip_blank_lines(chunk, first_line)
            if start is None:
                return None
            end = chunk.find(b"\n", start)
            end = len(chunk) if end < 0 else end
            self.layout = _detect_layout(chunk[start:end].removesuffix(b"\r"), first_line)
            if self.layout.header_line is not None:
                start, first_line = end + 1, first_line + 1
            chunk = chunk[start:]
        if not _NON_BLANK.search(chunk):
            return None  # blank lines only: no need to read them one by one
        # any other character makes a record or an error, so the input is not empty
        self.has_records = True
        return chunk, first_line

    def parse_piece(self, chunk: bytes, first_line: int, start: int, end: int) -> ParsedRecords:
        """The lines chunk[start:end] of a prepared chunk (its first line is ``first_line``)."""
        assert self.layout is not None
        body = chunk if (start, end) == (0, len(chunk)) else chunk[start:end]
        records = _parse_fast(body, self.layout)
        if records is None:  # only now is the piece's first line number needed
            line = first_line + chunk.count(b"\n", 0, start)
            records = _parse_slow(body, self.layout, line)
        return records

    def finish(self) -> None:
        """Refuse an input that held no records at all."""
        if self.layout is None:
            raise InputFormatError("empty_file", "the file is empty")
        if not self.has_records:
            raise InputFormatError("no_records", "the file has a header but no records")


def _skip_blank_lines(chunk: bytes, line: int) -> tuple[int | None, int]:
    """Offset and line number of the first non-blank line (None if there is none)."""
    rest = chunk.lstrip(_WS_BYTES)  # at C speed: a million blank lines must not take seconds
    if not rest:
        return None, line + chunk.count(b"\n")
    start = chunk.rfind(b"\n", 0, len(chunk) - len(rest)) + 1
    return start, line + chunk.count(b"\n", 0, start)


def _fast_records(numeric: np.ndarray, texts: dict[int, tuple[np.ndarray, np.ndarray]],
                  difficulty: np.ndarray | None, layout: _Layout) -> ParsedRecords:
    """ParsedRecords (with its arrays) from checked numbers and text columns given as
    (codes, distinct cleaned values) by file position."""
    encoded = {name: texts[layout.feature_pos[FEATURE_NAMES.index(name)]]
               for name in CATEGORICAL_FEATURES}
    arrays = FeatureArrays(numeric=numeric,
                           codes={name: pair[0] for name, pair in encoded.items()},
                           values={name: pair[1] for name, pair in encoded.items()})
    categoricals = {name: values[codes] for name, (codes, values) in encoded.items()}
    labels = None
    if layout.label_pos is not None:
        label_codes, label_values = texts[layout.label_pos]
        labels = label_values[label_codes]
    return _assemble(numeric, categoricals, labels, difficulty, arrays)


def _parse_fast(chunk: bytes, layout: _Layout) -> ParsedRecords | None:
    """pandas' C reader plus vectorised checks; None whenever anything looks off.

    Text columns are factorised: the checks run once per distinct value, and the records
    carry the numbers and the codes as FeatureArrays for the feature transformer.
    """
    if b"\x00" in chunk or layout.other_sep.encode() in chunk:
        return None
    if b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n"):
        return None  # a lone CR: pandas would take it for a line break, the line pass not
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        frame = pd.read_csv(
            io.BytesIO(chunk), sep=layout.sep, header=None, dtype=layout.text_dtypes,
            quoting=csv.QUOTE_NONE, na_filter=False, low_memory=False, engine="c",
        )
    except Exception:  # anything pandas refuses goes to the line pass, which explains it
        return None
    if frame.shape[1] != layout.n_fields:
        return None  # pandas drops the extra fields of a first line that has too many
    # A line with too few fields is padded with NaN, which the checks below refuse.

    numeric = _finite_non_negative(frame, list(layout.numeric_pos))
    if numeric is None:
        return None
    texts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for pos in layout.text_dtypes:
        codes, uniques = pd.factorize(frame.iloc[:, pos].to_numpy(dtype=object))
        if (codes < 0).any():  # a missing field (pandas pads a short line with NaN)
            return None
        values = _clean_uniques(uniques, layout.names[pos])
        if values is None:
            return None
        texts[pos] = codes, values
    difficulty = None
    if layout.difficulty_pos is not None:
        values = _finite_non_negative(frame, [layout.difficulty_pos])
        if values is None:
            return None
        values = values[:, 0]
        if not ((values == np.floor(values)) & (values <= _MAX_DIFFICULTY)).all():
            return None
        difficulty = values.astype(np.int64)
    return _fast_records(numeric, texts, difficulty, layout)


def _finite_non_negative(frame: pd.DataFrame, positions: list[int]) -> np.ndarray | None:
    values = np.empty((len(frame), len(positions)), dtype=np.float64, order="F")
    for j, pos in enumerate(positions):
        column = frame[pos].to_numpy()  # header=None: the column labels are the positions
        if column.dtype.kind not in "iuf":
            return None  # pandas could not read some value as a number
        values[:, j] = column
    if values.size and not (values.min() >= 0 and values.max() < np.inf):  # NaN fails both
        return None
    return values


def _clean_uniques(uniques: np.ndarray, name: str | None) -> np.ndarray | None:
    """The distinct values of a text column, stripped (labels normalised), as an object array;
    None if one is empty, binary or not a str."""
    cleaned = np.empty(len(uniques), dtype=object)
    for i, value in enumerate(uniques):
        if not isinstance(value, str) or _BINARY_CHARS.search(value):
            return None
        if name == LABEL_COLUMN:
            cleaned[i] = _label_or_na(value)
            continue
        value = value.strip(_WS)
        if not value and name in CATEGORICAL_FEATURES:
            return None
        cleaned[i] = value
    return cleaned


def _parse_slow(
    chunk: bytes, layout: _Layout, first_line: int
) -> ParsedRecords:
    """Line by line: the records, or an InputFormatError with the first problems found.

    A first pass only looks for problems (cheaply, see _Layout.plain_line); the records are
    built in a second pass, once the chunk is known to be valid.
    """
    positions = [(pos, name) for pos, name in enumerate(layout.names) if name is not None]
    lines = [
        (first_line + offset, raw.removesuffix(b"\r"))
        for offset, raw in enumerate(chunk.split(b"\n"))
        if raw.strip(_WS_BYTES)
    ]
    problems: list[dict] = []
    error_type = ""
    plain = layout.plain_line.fullmatch
    for line, raw in lines:
        if plain(raw):
            continue
        found, kind, _ = _check_line(raw, line, layout, positions)
        if found:
            error_type = error_type or kind
            problems.extend(found)
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise InputFormatError(error_type, problems=problems)

    rows = [_check_line(raw, line, layout, positions)[2] for line, raw in lines]
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(positions)
    by_name = dict(zip((name for _, name in positions), columns, strict=True))
    numeric = np.array([by_name[name] for name in NUMERIC_FEATURES], dtype=np.float64).T
    categoricals = {
        name: np.array(by_name[name], dtype=object) for name in CATEGORICAL_FEATURES
    }
    labels = None
    if layout.label_pos is not None:
        labels = np.empty(n, dtype=object)
        labels[:] = by_name[LABEL_COLUMN]
    difficulty = None
    if layout.difficulty_pos is not None:
        difficulty = np.array(by_name[DIFFICULTY_COLUMN], dtype=np.int64)
    return _assemble(numeric, categoricals, labels, difficulty)


def _check_line(
    raw: bytes, line: int, layout: _Layout, positions: list[tuple[int, str]]
) -> tuple[list[dict], str, list]:
    """Problems of one non-blank line (with their error type), else its parsed values."""
    text, found, error_type = _line_text(raw, line)
    if text is None:
        return [found], error_type, []
    if layout.other_sep in text:
        other, own = ("a tab", "comma") if layout.sep == "," else ("a comma", "tab")
        message = f"contains {other}, but the file is {own}-separated"
        return [problem(line, None, message)], "mixed_separators", []
    fields = text.split(layout.sep)
    if len(fields) != layout.n_fields:
        message = layout.field_count_message(len(fields))
        return [problem(line, None, message)], "field_count", []
    problems: list[dict] = []
    row: list = []
    for pos, name in positions:
        value, message = _field_value(fields[pos], name)
        if message is not None:
            problems.append(problem(line, name, message))
        row.append(value)
    return problems, "invalid_value", row


def _field_value(field: str, name: str) -> tuple[object, str | None]:
    if name == LABEL_COLUMN:
        return _label_or_na(field), None
    text = field.strip(_WS)
    if name in CATEGORICAL_FEATURES:
        return text, None if text else "empty value"
    if not text:
        return None, "empty value"
    quoted = repr(text if len(text) <= 40 else text[:37] + "...")
    if not _NUMBER.fullmatch(text):
        if _NON_FINITE.fullmatch(text):
            return None, f"{quoted} is not a finite number"
        return None, f"{quoted} is not a number"
    value = float(text) + 0.0  # + 0.0 turns -0.0 into 0.0, as pandas reads "-0"
    if value == np.inf:
        return None, f"{quoted} is not a finite number"
    if value < 0:
        return None, f"{quoted} must not be negative"
    if name == DIFFICULTY_COLUMN:
        if value != int(value):
            return None, f"{quoted} is not a whole number"
        if value > _MAX_DIFFICULTY:
            return None, f"{quoted} is out of range"
        return int(value), None
    return value, None


def _assemble(
    numeric: np.ndarray,
    categoricals: dict[str, np.ndarray],
    labels: np.ndarray | None,
    difficulty: np.ndarray | None,
    arrays: FeatureArrays | None = None,
) -> ParsedRecords:
    """Build ParsedRecords the same way for both paths, so their output cannot differ."""
    index = pd.RangeIndex(len(numeric))
    features = pd.DataFrame(numeric, columns=list(NUMERIC_FEATURES), index=index, copy=False)
    for name in CATEGORICAL_FEATURES:  # ascending positions, so each lands where it belongs
        column = pd.Series(categoricals[name], index=index, dtype=object)
        features.insert(FEATURE_NAMES.index(name), name, column)
    return ParsedRecords(
        features=features,
        labels=None if labels is None else pd.Series(
            labels, index=index, dtype=object, name=LABEL_COLUMN
        ),
        difficulty=None if difficulty is None else pd.Series(
            difficulty, index=index, dtype=np.int64, name=DIFFICULTY_COLUMN
        ),
        arrays=arrays,
    )

