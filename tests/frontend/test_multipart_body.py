"""The forwarded multipart body must be byte-for-byte what a multipart parser expects, and it
must reach requests as a stream with a Content-Length (not pre-encoded, not chunked)."""

from __future__ import annotations

import io
import tempfile
from contextlib import ExitStack
from typing import BinaryIO

import pytest
import requests
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

from api.multipart import DEFAULT_PART_TYPE, file_body

READ_SIZE = 16 * 1024  # what urllib3 asks of a file-like request body at a time


def parse(body: bytes, content_type: str):
    environ = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    _, form, files = parse_form_data(environ)
    return form, files


class CountingFile:
    """A real temporary file (as werkzeug spools a large upload) that records its reads."""

    def __init__(self, file: BinaryIO, data: bytes) -> None:
        self._file = file
        self._file.write(data)
        self._file.seek(0)
        self.read_sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        chunk = self._file.read(size)
        self.read_sizes.append(len(chunk))
        return chunk

    def __getattr__(self, name: str):  # fileno, seek, tell, close
        return getattr(self._file, name)


@pytest.fixture
def spooled():
    """Makes CountingFiles; closes them after the test."""
    with ExitStack() as stack:
        yield lambda data: CountingFile(stack.enter_context(tempfile.TemporaryFile()), data)


def test_body_parses_back_to_the_same_file_and_name():
    payload = bytes(range(256)) * 1000
    body = file_body("file", "traffic log.txt", io.BytesIO(payload), "text/plain")
    raw = body.read()
    assert len(raw) == body.len
    _, files = parse(raw, body.content_type)
    assert files["file"].filename == "traffic log.txt"
    assert files["file"].mimetype == "text/plain"
    assert files["file"].read() == payload


def test_many_small_reads_give_a_complete_body():
    payload = b"0,tcp,http,SF,1,2\n" * 5000
    body = file_body("file", "a.txt", io.BytesIO(payload))
    raw = b"".join(iter(lambda: body.read(1000), b""))
    assert len(raw) == body.len
    _, files = parse(raw, body.content_type)
    assert files["file"].read() == payload


def test_a_spooled_file_is_read_in_the_pieces_being_sent(spooled):
    stream = spooled(b"x" * (5 * 1024 * 1024 + 17))
    body = file_body("file", "big.txt", stream)
    sent = 0
    while chunk := body.read(READ_SIZE):
        sent += len(chunk)
    assert sent == body.len
    assert sum(stream.read_sizes) == 5 * 1024 * 1024 + 17
    assert max(stream.read_sizes) <= READ_SIZE  # never the whole file at once


def test_only_the_rest_of_a_partly_read_file_is_sent(spooled):
    stream = spooled(b"HEADERrecords")
    stream.read(6)
    body = file_body("file", "a.txt", stream)
    _, files = parse(body.read(), body.content_type)
    assert files["file"].read() == b"records"


@pytest.mark.parametrize("name", ['evil"; name="other.txt', "line\r\nbreak.txt"])
def test_filename_cannot_break_out_of_its_header(name):
    body = file_body("file", name, io.BytesIO(b"data"))
    form, files = parse(body.read(), body.content_type)
    assert list(files) == ["file"]
    assert not form
    assert "\n" not in files["file"].filename


@pytest.mark.parametrize("content_type", ["text/plain; charset=x\r\nX-Injected: 1",
                                          'text/plain"', "", None, "nonsense"])
def test_an_unusual_part_type_is_sent_as_octet_stream(content_type):
    body = file_body("file", "a.txt", io.BytesIO(b"data"), content_type)
    raw = body.read()
    assert b"X-Injected" not in raw
    _, files = parse(raw, body.content_type)
    assert files["file"].mimetype == DEFAULT_PART_TYPE


def test_requests_sends_it_as_a_stream_with_content_length(spooled):
    body = file_body("file", "a.txt", spooled(b"z" * 100_000))
    prepared = requests.Request("POST", "http://api.test/api/predict", data=body,
                                headers={"Content-Type": body.content_type}).prepare()
    assert prepared.body is body  # not encoded into one bytes object in memory
    assert prepared.headers["Content-Length"] == str(body.len)
    assert "Transfer-Encoding" not in prepared.headers
