"""HTTP below the client libraries: answers read from a raw socket, and multipart bodies
generated block by block (uploads larger than a test should hold in memory)."""

from __future__ import annotations

import json
from collections.abc import Iterator


def read_http_response(sock, limit: int = 1 << 20) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer read from a raw socket (body read up to
    Content-Length or until the peer closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while (length < 0 or len(body) < length) and len(body) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def json_body(body: bytes) -> dict:
    return json.loads(body.decode())


MULTIPART_BOUNDARY = "robustness-boundary-7f3a"
MULTIPART_CONTENT_TYPE = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"


def streamed_upload(size: int, *, fill: bytes = b"7", end: bytes = b"", name: str = "big.txt",
                    block: int = 1 << 20) -> Iterator[bytes]:
    """A multipart/form-data body with one file of ``size`` bytes (``fill`` repeated, then
    ``end``), generated block by block so the test never holds it in memory."""
    yield (f"--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
           f"filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n").encode()
    piece = fill * (block // len(fill))
    left = size - len(end)
    while left > 0:
        part = piece[:left]
        left -= len(part)
        yield part
    yield end
    yield f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()
