"""UploadSink: hashing while receiving, the size limit, and keeping each distinct upload once."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import time

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from server.uploads import HashingSpool, UploadSink
from tests.helpers.disk import fill_disk


def storage(data: bytes, name: str = "logs.txt") -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name)


def kept(sink: UploadSink) -> list[str]:
    return sorted(p.name for p in sink.stored_dir.iterdir() if not p.name.startswith("."))


def test_receive_copies_a_plain_stream_and_hashes_it(tmp_path):
    sink = UploadSink(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    received = sink.receive(storage(data, "dir/../capture.log"))
    assert received.sha256 == hashlib.sha256(data).hexdigest()
    assert received.size == len(data)
    assert received.path.read_bytes() == data
    assert received.path.parent == tmp_path / "incoming"
    assert received.original_name == "capture.log"


def test_spool_refuses_to_grow_past_its_limit(tmp_path):
    spool = HashingSpool(tmp_path, max_bytes=10)
    spool.write(b"0123456789")
    with pytest.raises(RequestEntityTooLarge):
        spool.write(b"x")
    spool.close()
    assert not spool.path.exists()


def test_register_keeps_the_file_under_a_timestamp_and_hash_name(tmp_path):
    sink = UploadSink(tmp_path)
    received = sink.receive(storage(b"a,b\n", "capture.CSV"))
    assert sink.register(received, rows=1, has_labels=False, input_kind="kdd") == {
        "duplicate": False, "stored": True, "store_reason": None}
    (name,) = kept(sink)
    assert name.endswith(f"-{received.sha256[:16]}.csv")
    assert not received.path.exists()


def test_same_content_is_a_duplicate_and_not_kept_twice(tmp_path):
    sink = UploadSink(tmp_path)
    sink.register(sink.receive(storage(b"same")), 1, False, "kdd")
    second = sink.receive(storage(b"same", "renamed.log"))
    assert sink.register(second, 1, False, "kdd") == {"duplicate": True, "stored": False,
                                                      "store_reason": "duplicate"}
    assert len(kept(sink)) == 1
    sink.discard(second)
    assert not second.path.exists()


@pytest.mark.parametrize(("name", "data", "extension"), [
    ("capture.exe", b"x", "txt"),
    ("no-extension", b"x", "txt"),
    ("weird.gz", b"x", "gz"),
    ("upload.bin", gzip.compress(b"x"), "gz"),
    ("conn.LOG", b"x", "log"),
])
def test_extension_is_a_known_one_or_read_from_the_content(tmp_path, name, data, extension):
    sink = UploadSink(tmp_path)
    sink.register(sink.receive(storage(data, name)), 1, False, "kdd")
    (kept_name,) = kept(sink)
    assert kept_name.rsplit(".", 1)[1] == extension


def test_stale_temp_files_are_removed_and_fresh_ones_kept(tmp_path):
    sink = UploadSink(tmp_path)
    old = sink.open_spool()
    fresh = sink.open_spool()
    past = time.time() - 7200
    os.utime(old.path, (past, past))
    assert sink.remove_stale_spools() == 1
    assert not old.path.exists() and fresh.path.exists()
    old.close()
    fresh.close()


# --- a full disk (a 1 MB tmpfs: tests/conftest.py) -----------------------------------------


def test_closing_a_spool_on_a_full_disk_deletes_it_without_raising(small_disk):
    """Bytes still in the write buffer cannot be flushed: close() must not raise, and the
    temp file must go."""
    disk = small_disk("1m")
    spool = HashingSpool(disk / "incoming", max_bytes=None)
    fill_disk(disk)
    spool.write(b"7" * 2000)  # smaller than the buffer: nothing written to disk yet
    spool.close()
    assert spool.closed
    assert list((disk / "incoming").iterdir()) == []


def test_a_spool_whose_write_failed_on_a_full_disk_is_deleted_on_close(small_disk):
    disk = small_disk("1m")
    spool = HashingSpool(disk / "incoming", max_bytes=None)
    spool.write(b"7" * 1000)  # buffered
    fill_disk(disk, leave=64 * 1024)
    with pytest.raises(OSError) as failure:
        for _ in range(64):
            spool.write(b"7" * 16384)
    assert failure.value.errno == errno.ENOSPC
    spool.close()
    assert list((disk / "incoming").iterdir()) == []


def test_a_sink_on_a_full_disk_opens_and_answers_later(small_disk):
    """A server restarted on a full disk must start: the registry opens on first use."""
    disk = small_disk("1m")
    UploadSink(disk).registry.counts()  # the database exists, from an earlier run
    fill_disk(disk)
    sink = UploadSink(disk)  # does not raise
    assert sink.remove_stale_spools() == 0
