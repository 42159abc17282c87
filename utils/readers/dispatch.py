"""The readers' entry points: tell the format by the first bytes, then read with its reader.

``read_records`` reads a whole input; ``iter_record_chunks`` and ``iter_parse_tasks`` read
a large one in bounded memory, the latter as tasks that may run on several threads.
"""

from __future__ import annotations

import functools
import itertools
import tempfile
from collections.abc import Iterator

import pandas as pd

from utils.readers.kdd import NON_BLANK, KddReader
from utils.readers.records import ParsedRecords, ParseTask, number_rows, slice_records
from utils.readers.source import (
    BOM,
    HEAD_BYTES,
    WS_BYTES,
    Source,
    content_blocks,
    is_file,
    line_chunks,
    peek,
    refuse_nul,
    resolve_limit,
    strip_bom,
)
from utils.readers.zeek import INPUT_KIND, read_zeek_records
from utils.readers.zeek_stream import iter_zeek_batches, iter_zeek_identity

_MIN_PIECE_BYTES = 256 << 10  # about 1,700 KDD records
_MIN_ZEEK_PIECE_ROWS = 10_000  # a piece costs a few ms of fixed overhead (see _split_lines)


def detect_input_kind(head: bytes) -> str:
    """Tell KDD records from Zeek logs by the first bytes of the (decompressed) content.

    Returns "kdd", "zeek_tsv" (``#separator``/``#fields`` header) or "zeek_json" (first
    non-blank line is a JSON object).
    """
    text = head.removeprefix(BOM).lstrip(WS_BYTES)
    if text.startswith((b"#separator", b"#fields")):
        return "zeek_tsv"
    if text.startswith(b"{"):
        return "zeek_json"
    return "kdd"


def input_kind_of(source: Source, *, max_decompressed_bytes: int | None = None) -> str:
    """The input kind of a path or bytes as models know them (utils.model_store.kinds):
    "zeek" for a Zeek conn.log (TSV or JSON), else "kdd"; from its first (decompressed)
    bytes only, so a server can pick the model before it reads the input.
    InputFormatError for corrupt gzip, as the readers give it."""
    content = content_blocks(source, resolve_limit(max_decompressed_bytes))
    try:
        head, _ = peek(content, HEAD_BYTES)
    finally:
        content.close()
    return "kdd" if detect_input_kind(head) == "kdd" else INPUT_KIND


def read_records(
    source: Source, *, max_decompressed_bytes: int | None = None
) -> ParsedRecords:
    """Read a whole upload or file (plain or gzip) into memory and parse it.

    ``source`` is a path, the content as bytes, or a binary file object. The content
    (decompressed, if gzip) may be at most ``max_decompressed_bytes`` long (default
    DEFAULT_MAX_DECOMPRESSED_BYTES).
    """
    limit = resolve_limit(max_decompressed_bytes)
    head, blocks = peek(content_blocks(source, limit), HEAD_BYTES)
    kind = detect_input_kind(head)
    if kind == "kdd":
        refuse_nul(head)
    data = b"".join(blocks)
    if kind != "kdd":
        return read_zeek_records(data.removeprefix(BOM))
    reader = KddReader()
    body = reader.prepare(data.removeprefix(BOM), first_line=1)
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
    that need not be consecutive in the file (utils.readers.zeek_stream): the index tells.
    """
    rows = 0
    for task in iter_parse_tasks(
            source, chunk_rows=chunk_rows, max_decompressed_bytes=max_decompressed_bytes):
        records = number_rows(task(), rows)
        rows += len(records)
        yield records


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
    parsed here, batch by batch (utils.readers.zeek_stream, which may read the source three
    times: a file object must be seekable, or it is copied to a temp file); its tasks only
    cut the batches, whose rows are numbered already.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    limit = resolve_limit(max_decompressed_bytes)
    start = source.tell() if is_file(source) and source.seekable() else None
    content = content_blocks(source, limit)
    head, blocks = peek(content, HEAD_BYTES)
    refuse_nul(head)
    if detect_input_kind(head) != "kdd":
        if is_file(source) and start is None:  # a pipe: keep it to read it more than once
            with tempfile.TemporaryFile() as spool:
                for block in blocks:
                    spool.write(block)
                yield from _zeek_tasks(spool, 0, limit, chunk_rows, pieces)
            return
        content.close()
        yield from _zeek_tasks(source, start, limit, chunk_rows, pieces)
        return
    reader = KddReader()
    line = 1
    for chunk, newlines in line_chunks(strip_bom(blocks), chunk_rows):
        body = reader.prepare(chunk, first_line=line)
        line += newlines
        if body is not None:
            for start, end in _split_lines(body[0], pieces):
                if NON_BLANK.search(body[0], start, end):
                    yield functools.partial(reader.parse_piece, *body, start, end)
    reader.finish()


def iter_identity(
    source: Source, *, chunk_rows: int = 100_000, max_decompressed_bytes: int | None = None
) -> Iterator[pd.DataFrame]:
    """A Zeek upload's identity columns, in file order, chunk by chunk: for per-row output of
    an upload that has been parsed already (its records carry only what the model needs)."""
    blocks = content_blocks(source, resolve_limit(max_decompressed_bytes))
    yield from iter_zeek_identity(line_chunks(strip_bom(blocks), chunk_rows))


def _zeek_tasks(source: Source, start: int | None, limit: int, chunk_rows: int,
                pieces: int) -> Iterator[ParseTask]:
    """A Zeek log's batches (utils.readers.zeek_stream reads the source up to three times),
    each cut into ``pieces`` tasks."""

    def open_chunks() -> Iterator[tuple[bytes, int]]:
        if start is not None:
            source.seek(start)
        return line_chunks(strip_bom(content_blocks(source, limit)), chunk_rows)

    for records in iter_zeek_batches(open_chunks):
        size = max(-(-len(records) // pieces), _MIN_ZEEK_PIECE_ROWS)
        for first in range(0, len(records), size):
            yield functools.partial(slice_records, records, first, first + size)


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
