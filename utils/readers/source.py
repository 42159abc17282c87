"""The bytes of an upload or file: read in blocks, gunzipped, bounded, cut into line chunks.

Also the byte-level checks every format shares (byte-order mark, NUL bytes, UTF-8), written
once so that the KDD and the Zeek reader refuse the same bytes with the same words.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

import numpy as np

from utils.readers.records import InputFormatError, problem

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

DEFAULT_MAX_DECOMPRESSED_BYTES = 1 << 30
HEAD_BYTES = 1 << 16  # enough to tell the format and to refuse a binary upload early
BOM = b"\xef\xbb\xbf"
WS = " \t\r\n\v\f"  # what pandas' number parser skips around a value (and bytes.strip())
WS_BYTES = WS.encode()

_BLOCK = 1 << 20
_MAX_LINE_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def resolve_limit(max_decompressed_bytes: int | None) -> int:
    if max_decompressed_bytes is not None:
        return max_decompressed_bytes
    return DEFAULT_MAX_DECOMPRESSED_BYTES


def is_file(source: Source) -> bool:
    return hasattr(source, "read")


def _too_large(limit: int, compressed: bool) -> InputFormatError:
    what = "decompressed input" if compressed else "input"
    return InputFormatError("too_large", f"{what} exceeds the {limit / (1 << 20):g} MB limit")


def _raw_blocks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        # in blocks, as from a file: line_chunks scans each block it cuts from
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


def content_blocks(source: Source, limit: int) -> Iterator[bytes]:
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


def peek(blocks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes (or more), and all the blocks again, those included."""
    parts: list[bytes] = []
    length = 0
    for block in blocks:
        parts.append(block)
        length += len(block)
        if length >= size:
            break
    head = b"".join(parts)
    return head, chain([head], blocks)


def strip_bom(blocks: Iterator[bytes]) -> Iterator[bytes]:
    first = next(blocks, b"")
    yield first.removeprefix(BOM)
    yield from blocks


def line_chunks(blocks: Iterator[bytes], max_lines: int) -> Iterator[tuple[bytes, int]]:
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

    line_chunks copies what follows each cut; an input given as one bytes object (a file
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


# --- checks every format shares ------------------------------------------------------------


def binary_data(line: int, byte: int) -> dict:
    """The problem of a line holding a control byte that no text log holds."""
    return problem(line, None, f"contains binary data (byte 0x{byte:02x})")


def refuse_nul(data: bytes, first_line: int = 1) -> None:
    """Refuse NUL bytes (in a head: at once, before a huge binary upload is decompressed in
    full); ``first_line`` is the line ``data`` starts on."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line = first_line + data.count(b"\n", 0, nul)
        raise InputFormatError("binary_data", problems=[binary_data(line, 0)])


def decode_utf8(raw: bytes, line: int) -> str:
    """One line's text; an "encoding" InputFormatError naming the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise InputFormatError("encoding", message, line=line) from None
