"""A multipart/form-data request body that reads the uploaded file in chunks while it is sent.

requests' own `files=` encoder reads the whole file into memory before sending; uploads can be
hundreds of megabytes, so the frontend hands requests this file-like body instead. Its length
is known up front, so the API receives an ordinary Content-Length request, not a chunked one.
"""

from __future__ import annotations

import secrets
from typing import BinaryIO

CHUNK_SIZE = 64 * 1024


class MultipartFileBody:
    """One file field framed as multipart/form-data, readable like a file by http.client."""

    def __init__(self, field: str, filename: str, stream: BinaryIO,
                 content_type: str = "application/octet-stream") -> None:
        self.boundary = secrets.token_hex(16)
        self._stream = stream
        start = stream.tell()
        self._file_size = stream.seek(0, 2) - start
        stream.seek(start)
        self._head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{_quote(field)}"; '
            f'filename="{_quote(filename)}"\r\n'
            f"Content-Type: {_quote(content_type) or 'application/octet-stream'}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._parts: list[bytes | BinaryIO] = [self._head, stream, self._tail]
        self._buffer = b""

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + self._file_size + len(self._tail)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative); b"" at the end."""
        if size is None or size < 0:
            size = len(self)
        chunks = []
        wanted = size
        while wanted > 0 and (self._buffer or self._parts):
            if not self._buffer:
                self._buffer = self._next_chunk(max(wanted, CHUNK_SIZE))
                continue
            chunks.append(self._buffer[:wanted])
            self._buffer = self._buffer[wanted:]
            wanted -= len(chunks[-1])
        return b"".join(chunks)

    def _next_chunk(self, size: int) -> bytes:
        part = self._parts[0]
        if isinstance(part, bytes):
            self._parts.pop(0)
            return part
        chunk = part.read(size)
        if not chunk:
            self._parts.pop(0)
        return chunk


def _quote(value: str) -> str:
    """Header-safe text: no line breaks, and no quote that would end the parameter early."""
    return value.replace("\r", "").replace("\n", "").replace('"', "%22")
