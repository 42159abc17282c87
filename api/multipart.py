"""The multipart/form-data body that forwards an uploaded file to the ML API as a stream.

requests' own `files=` encoder reads the whole file into memory before sending, and uploads
can be hundreds of megabytes. requests-toolbelt's `MultipartEncoder` instead reads the file a
piece at a time while requests sends it, knows the body's length up front (so the API gets an
ordinary Content-Length request, not a chunked one), and quotes the part's header parameters
(urllib3's multipart rules), so a filename cannot break out of its header.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO

from requests_toolbelt.multipart.encoder import MultipartEncoder

DEFAULT_PART_TYPE = "application/octet-stream"
# A bare `type/subtype`: the only part content type passed on as the browser sent it.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")


def file_body(field: str, filename: str, stream: BinaryIO,
              content_type: str | None = None) -> MultipartEncoder:
    """One file field, read from `stream` as it is sent (a file: from its current position)."""
    return MultipartEncoder(fields={field: (filename, stream, _part_type(content_type))})


def files_body(field: str, files: list[tuple[str, BinaryIO, str | None]],
               text_fields: dict[str, str] | None = None) -> MultipartEncoder:
    """Several files under one field name, each streamed as it is sent, then text fields."""
    parts: list[tuple[str, Any]] = [
        (field, (filename, stream, _part_type(content_type)))
        for filename, stream, content_type in files]
    parts += list((text_fields or {}).items())
    return MultipartEncoder(fields=parts)


def _part_type(content_type: str | None) -> str:
    """The browser's part type if it is a bare ``type/subtype``, else a neutral one."""
    return content_type if content_type and _MEDIA_TYPE.fullmatch(content_type) else (
        DEFAULT_PART_TYPE)
