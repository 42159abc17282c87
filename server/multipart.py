"""Form bodies of the API: the one uploaded file streamed to disk, everything else small.

werkzeug's own form parser opens a temp file (for us, an upload spool on the data disk) for
every part that carries a file name, up to 1,000 per request, and refuses too many parts or a
large text field with a bare 413 that can only be reported as "too large". This parser runs
werkzeug's ``MultipartDecoder`` with limits of its own:

- only the first part named ``file`` that carries a file name goes to the request's stream
  factory (``UploadRequest._get_file_stream``, a spool); every other part, text or file, is
  kept in memory, all of them together within ``MAX_OTHER_BYTES``. A route that takes several
  files names its field and how many of them are spooled (``file_fields``: the admin's
  baseline, several conn.logs in the field ``files``);
- at most ``MAX_PARTS`` parts, and part headers within ``MAX_HEADER_BYTES``;
- a url-encoded form is read only up to ``MAX_OTHER_BYTES``.

Each limit answers 413 ``too_large`` naming that limit (``FormLimitExceeded``); the file's own
size limit is the spool's (``ANOMALYZE_MAX_UPLOAD_MB``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import IO, Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

FILE_FIELD = "file"
MAX_PARTS = 100
MAX_OTHER_BYTES = 64 * 1024
MAX_HEADER_BYTES = 256 * 1024  # also what the decoder may buffer before the first boundary
# The body is read from the server in large blocks and handed to the decoder in small pieces.
# gunicorn's reader copies what it holds beyond each read (up to 1 MiB) on every read: reading a
# 70 MB body 64 KiB at a time cost about 200 ms of CPU in those copies, 1 MiB at a time 15 ms.
# The decoder still sees 64 KiB at a time, within its buffer limit (MAX_HEADER_BYTES).
_READ_BYTES = 1024 * 1024
_FEED_BYTES = 64 * 1024


class FormLimitExceeded(RequestEntityTooLarge):
    """A limit on the form's framing or on its other parts (not the uploaded file's size)."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message)


class _Budget:
    """Bytes the in-memory parts of one request may still use, together."""

    def __init__(self, limit: int, file_field: str = FILE_FIELD) -> None:
        self.left = limit
        self.file_field = file_field

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise FormLimitExceeded(
                f"the form's other parts exceed {MAX_OTHER_BYTES // 1024} KB in all: "
                f"send the records as file parts named '{self.file_field}' (with a file name)")


class _MemoryPart(io.BytesIO):
    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self._budget = budget

    def write(self, data: Any) -> int:
        self._budget.spend(len(data))
        return super().write(data)


class UploadFormParser(FormDataParser):
    """werkzeug's FormDataParser with the multipart and url-encoded parts replaced.

    ``file_fields``: how many file parts of each field name are spooled to disk (default:
    the first part named ``file``).
    """

    def __init__(self, *args: Any, file_fields: Mapping[str, int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file_fields = dict(file_fields or {FILE_FIELD: 1})

    def parse(self, stream: IO[bytes], mimetype: str, content_length: int | None,
              options: dict[str, str] | None = None):
        if mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return super().parse(stream, mimetype, content_length, options)
        try:
            if mimetype == "application/x-www-form-urlencoded":
                return stream, self._read_urlencoded(stream), self.cls()
            boundary = (options or {}).get("boundary", "").encode("ascii")
            if not boundary:
                raise ValueError("missing boundary")
            form, files = self._read_multipart(stream, boundary, content_length)
        except ValueError:  # malformed: like werkzeug, an empty form unless told otherwise
            if not self.silent:
                raise
            return stream, self.cls(), self.cls()
        return stream, form, files

    def _read_urlencoded(self, stream: IO[bytes]) -> MultiDict:
        body = stream.read(MAX_OTHER_BYTES + 1)
        _Budget(MAX_OTHER_BYTES).spend(len(body))
        return self.cls(parse_qsl(body.decode(), keep_blank_values=True,
                                  errors="werkzeug.url_quote"))

    def _read_multipart(self, stream: IO[bytes], boundary: bytes,
                        content_length: int | None) -> tuple[MultiDict, MultiDict]:
        decoder = MultipartDecoder(boundary, max_form_memory_size=MAX_HEADER_BYTES)
        budget = _Budget(MAX_OTHER_BYTES, next(iter(self.file_fields)))
        fields: list[tuple[str, str]] = []
        files: list[tuple[str, FileStorage]] = []
        parts = 0
        spooled: dict[str, int] = {}
        part: Field | File | None = None
        container: IO[bytes] = io.BytesIO()
        for data in _pieces(stream):
            try:
                decoder.receive_data(data or None)
            except RequestEntityTooLarge:  # only the decoder's own buffer limit raises here
                raise FormLimitExceeded(
                    f"a multipart part's headers exceed {MAX_HEADER_BYTES // 1024} KB") from None
            event = decoder.next_event()
            while not isinstance(event, Epilogue | NeedData):
                if isinstance(event, Field | File):
                    parts += 1
                    if parts > MAX_PARTS:
                        raise FormLimitExceeded(
                            f"the form has more than {MAX_PARTS} parts; /api/predict needs one, "
                            f"the file part '{FILE_FIELD}'")
                    part = event
                    if (isinstance(event, File)
                            and spooled.get(event.name, 0) < self.file_fields.get(event.name, 0)):
                        spooled[event.name] = spooled.get(event.name, 0) + 1
                        container = self.stream_factory(
                            total_content_length=content_length, filename=event.filename,
                            content_type=event.headers.get("content-type"), content_length=0)
                    else:
                        container = _MemoryPart(budget)
                elif isinstance(event, Data) and part is not None:
                    container.write(event.data)
                    if not event.more_data:
                        if isinstance(part, Field):
                            text = container.getvalue()  # type: ignore[attr-defined]
                            fields.append((part.name, text.decode("utf-8", "replace")))
                        else:
                            container.seek(0)
                            files.append((part.name, FileStorage(
                                container, part.filename, part.name, headers=part.headers)))
                        part = None
                event = decoder.next_event()
            if not data:
                break
        return self.cls(fields), self.cls(files)


def _pieces(stream: IO[bytes]) -> Iterator[bytes | memoryview]:
    """The stream's bytes in pieces of at most _FEED_BYTES, read _READ_BYTES at a time, then
    one empty piece at the end."""
    while block := stream.read(_READ_BYTES):
        view = memoryview(block)
        for start in range(0, len(view), _FEED_BYTES):
            yield view[start:start + _FEED_BYTES]
    yield b""
