"""The streamed multipart body must be byte-for-byte what a multipart parser expects, and it
must reach requests as a stream with a Content-Length (not pre-encoded, not chunked)."""

from __future__ import annotations

import io

import pytest
import requests
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

from api.multipart import CHUNK_SIZE, MultipartFileBody


def parse(body: bytes, content_type: str):
    environ = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    _, form, files = parse_form_data(environ)
    return form, files


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.read_sizes.append(size if size is not None else -1)
        return super().read(size)


def test_body_parses_back_to_the_same_file_and_name():
    payload = bytes(range(256)) * 1000
    body = MultipartFileBody("file", "traffic log.txt", io.BytesIO(payload), "text/plain")
    raw = body.read()
    assert len(raw) == len(body)
    _, files = parse(raw, body.content_type)
    assert files["file"].filename == "traffic log.txt"
    assert files["file"].read() == payload


def test_many_small_reads_give_a_complete_body():
    payload = b"0,tcp,http,SF,1,2\n" * 5000
    body = MultipartFileBody("file", "a.txt", io.BytesIO(payload))
    raw = b"".join(iter(lambda: body.read(1000), b""))
    assert len(raw) == len(body)
    _, files = parse(raw, body.content_type)
    assert files["file"].read() == payload


def test_file_is_read_in_bounded_chunks():
    stream = CountingStream(b"x" * (5 * CHUNK_SIZE + 17))
    body = MultipartFileBody("file", "big.txt", stream)
    while body.read(16 * 1024):
        pass
    assert stream.read_sizes
    assert max(stream.read_sizes) <= CHUNK_SIZE


def test_only_the_rest_of_a_partly_read_stream_is_sent():
    stream = io.BytesIO(b"HEADERrecords")
    stream.read(6)
    body = MultipartFileBody("file", "a.txt", stream)
    _, files = parse(body.read(), body.content_type)
    assert files["file"].read() == b"records"


@pytest.mark.parametrize("name", ['evil"; name="other.txt', "line\r\nbreak.txt"])
def test_filename_cannot_break_out_of_its_header(name):
    body = MultipartFileBody("file", name, io.BytesIO(b"data"))
    form, files = parse(body.read(), body.content_type)
    assert list(files) == ["file"]
    assert not form
    assert "\n" not in files["file"].filename


def test_requests_sends_it_as_a_stream_with_content_length():
    body = MultipartFileBody("file", "a.txt", io.BytesIO(b"z" * 100_000))
    prepared = requests.Request("POST", "http://api.test/api/predict", data=body,
                                headers={"Content-Type": body.content_type}).prepare()
    assert prepared.body is body  # not encoded into one bytes object in memory
    assert prepared.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in prepared.headers
