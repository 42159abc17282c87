"""The follower alone: rotation by inode, resuming a renamed file, truncation in place."""

from __future__ import annotations

import os

from utils.watch.follower import LogFollower


def _lines(chunks) -> list[bytes]:
    return [line for chunk in chunks for line in chunk.data.splitlines()]


def test_a_rotated_file_is_read_to_its_end_before_the_new_one(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"a\nb\n")
    follower = LogFollower(path)
    assert _lines(follower.read()) == [b"a", b"b"]
    with open(path, "ab") as handle:
        handle.write(b"c\n")  # written just before the rotation
    os.rename(path, tmp_path / "conn.1.log")
    assert _lines(follower.read()) == [b"c"]  # the new file does not exist yet: wait
    path.write_bytes(b"d\n")
    assert _lines(follower.read()) == [b"d"]
    assert follower.read() == []


def test_a_restarted_follower_finds_its_file_renamed_and_reads_the_newer_ones(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"#fields\tts\n1\n2\n")
    follower = LogFollower(path)
    follower.read()
    saved = follower.snapshot()
    follower.close()
    with open(path, "ab") as handle:
        handle.write(b"3\n")
    os.rename(path, tmp_path / "conn.1.log")  # rotated twice while stopped
    (tmp_path / "conn.2.log").write_bytes(b"#fields\tts\n4\n")
    os.utime(tmp_path / "conn.2.log", (os.stat(tmp_path / "conn.1.log").st_mtime + 1,) * 2)
    path.write_bytes(b"#fields\tts\n5\n")
    resumed = LogFollower(path, saved)
    chunks = resumed.read()
    assert chunks[0].header == b"#fields\tts\n"  # the resumed file's header comes along
    assert _lines(chunks) == [b"3", b"#fields\tts", b"4", b"#fields\tts", b"5"]
    assert resumed.lost == 0


def test_a_half_line_in_a_rotated_file_is_handed_on_at_the_end(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"a\nhal")
    follower = LogFollower(path)
    assert _lines(follower.read()) == [b"a"]
    os.rename(path, tmp_path / "conn.1.log")
    path.write_bytes(b"b\n")
    chunks = follower.read()
    assert [chunk.final for chunk in chunks] == [True, False]
    assert _lines(chunks) == [b"hal", b"b"]


def test_a_file_truncated_in_place_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"a\nb\nc\n")
    follower = LogFollower(path)
    follower.read()
    with open(path, "r+b") as handle:
        handle.truncate(0)
    with open(path, "ab") as handle:
        handle.write(b"d\n")
    assert _lines(follower.read()) == [b"d"]


def test_the_rest_of_a_rotated_file_is_read_in_bounded_pieces(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"")
    follower = LogFollower(path)
    follower.read()
    path.write_bytes(b"".join(b"%04d\n" % i for i in range(100)))  # 500 bytes
    os.rename(path, tmp_path / "conn.1.log")
    path.write_bytes(b"next\n")
    pieces = []
    while chunks := follower.read(max_bytes=120):
        assert sum(len(chunk.data) for chunk in chunks) <= 120
        pieces += _lines(chunks)
    assert pieces == [b"%04d" % i for i in range(100)] + [b"next"]
