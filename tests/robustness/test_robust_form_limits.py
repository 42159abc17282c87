"""Multipart framing around the upload (Flask test client): only the file part is spooled to
disk, the rest stays small in memory, and each limit says which it is."""

from __future__ import annotations

import pytest

from server import uploads
from server.multipart import MAX_HEADER_BYTES, MAX_OTHER_BYTES, MAX_PARTS
from tests.helpers.api_calls import assert_json_error
from tests.helpers.disk import leftover_temp_files, stored_files
from tests.helpers.kdd_data import synthetic_kdd

BOUNDARY = "form-limits-boundary"
RECORDS = synthetic_kdd(40, 20, seed=91)


def part(name: str, data: bytes, filename: str | None = None, extra_headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra_headers}\r\n"
            ).encode() + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def post(client, body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}"):
    return client.post("/api/predict", data=body, content_type=content_type)


@pytest.fixture
def spools_opened(monkeypatch) -> list:
    opened: list = []
    real_open = uploads.UploadSink.open_spool

    def counting_open(self):
        spool = real_open(self)
        opened.append(spool)
        return spool

    monkeypatch.setattr(uploads.UploadSink, "open_spool", counting_open)
    return opened


def test_1200_parts_are_refused_naming_the_part_limit(client, data_dir):
    body = form(part("file", RECORDS, "t.txt"), *(part(f"f{i}", b"x") for i in range(1199)))
    body = assert_json_error(post(client, body), 413, "too_large")
    assert f"more than {MAX_PARTS} parts" in body["error"]
    assert "MB" not in body["error"]
    assert leftover_temp_files(data_dir) == []


def test_a_600_kb_text_field_is_refused_naming_the_field_limit(client, data_dir):
    body = form(part("comment", b"x" * 600_000), part("file", RECORDS, "t.txt"))
    body = assert_json_error(post(client, body), 413, "too_large")
    assert f"{MAX_OTHER_BYTES // 1024} KB" in body["error"]
    assert "MB" not in body["error"]
    assert leftover_temp_files(data_dir) == [] and stored_files(data_dir) == []


def test_a_part_header_longer_than_its_limit_is_refused_naming_it(client):
    header = f"X-Padding: {'p' * (MAX_HEADER_BYTES + 10)}\r\n"
    body = form(part("file", RECORDS, "t.txt", extra_headers=header))
    body = assert_json_error(post(client, body), 413, "too_large")
    assert "headers exceed" in body["error"]


def test_only_the_file_part_is_spooled_to_disk(client, data_dir, spools_opened):
    """50 other file parts (werkzeug alone opens a temp file for each) and a second part
    named 'file': one spool, and the answer is about the first 'file' part."""
    others = [part(f"extra{i}", b"1,2,3\n", f"extra{i}.txt") for i in range(50)]
    body = form(part("note", b"hello"), *others, part("file", RECORDS, "t.txt"),
                part("file", synthetic_kdd(5, 0, seed=92), "second.txt"))
    response = post(client, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["summary"]["total_samples"] == 60
    assert len(spools_opened) == 1
    assert leftover_temp_files(data_dir) == []
    assert len(stored_files(data_dir)) == 1


def test_other_parts_share_one_memory_budget(client, spools_opened):
    """Each of these parts is small, together they are not: files named otherwise included."""
    size = MAX_OTHER_BYTES // 4 + 1
    others = [part(f"extra{i}", b"y" * size, f"e{i}.txt") for i in range(4)]
    body = assert_json_error(post(client, form(part("file", RECORDS, "t.txt"), *others)), 413,
                             "too_large")
    assert f"{MAX_OTHER_BYTES // 1024} KB" in body["error"]
    assert len(spools_opened) == 1


def test_a_url_encoded_body_is_read_only_up_to_the_field_limit(client):
    body = b"file=" + b"x" * (MAX_OTHER_BYTES + 100)
    response = post(client, body, content_type="application/x-www-form-urlencoded")
    body = assert_json_error(response, 413, "too_large")
    assert f"{MAX_OTHER_BYTES // 1024} KB" in body["error"]


def test_a_small_url_encoded_body_is_missing_file(client):
    response = post(client, b"file=abc", content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 400, "missing_file")


def test_the_upload_size_limit_still_names_the_upload_limit(model_dir, data_dir):
    from tests.helpers.api_calls import make_app

    client = make_app(model_dir, data_dir, MAX_UPLOAD_MB=0.01).test_client()
    body = assert_json_error(post(client, form(part("file", b"7" * 20_000, "t.txt"))), 413,
                             "too_large")
    assert "0.01 MB" in body["error"]
