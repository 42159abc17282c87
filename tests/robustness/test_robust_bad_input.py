"""Named bad inputs through POST /api/predict (Flask test client): each gets a result or the
documented 4xx JSON error, nothing is kept of a refused upload, and no temp file is left."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import re
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from tests.helpers.api_calls import assert_json_error, make_app, upload
from tests.helpers.disk import files_under, leftover_temp_files, stored_files
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.repo import REPO_ROOT
from utils.readers import DEFAULT_MAX_DECOMPRESSED_BYTES
from utils.schema import FEATURE_NAMES

STORED_NAME = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{16}\.(txt|csv|log|tsv|json|gz)$")
MB = 1 << 20
PARSER_MAX_LINE = 1 * MB  # utils/readers/source.py _MAX_LINE_BYTES


def good_lines(n: int = 12, seed: int = 4) -> list[str]:
    return synthetic_kdd(n - n // 3, n // 3, seed=seed).decode().splitlines()


def with_field(index: int, value: str, line: int = 1, n: int = 4) -> bytes:
    """``n`` good lines with field ``index`` of line ``line`` (1-based) set to ``value``."""
    lines = good_lines(n)
    fields = lines[line - 1].split(",")
    fields[index] = value
    lines[line - 1] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


def assert_nothing_kept(data_dir) -> None:
    assert stored_files(data_dir) == []
    assert leftover_temp_files(data_dir) == []


def summary_of(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["success"] is True
    return body


# --- refused with a 400 naming the line ------------------------------------------------------

HEADER = ",".join([*FEATURE_NAMES, "label", "difficulty"])


def field_count_cases():
    lines = good_lines(4)
    short = ",".join(lines[0].split(",")[:40])
    long_ = lines[0] + ",extra"
    return {
        "40 fields": (short + "\n").encode(),
        "44 fields": (long_ + "\n").encode(),
        "line 3 differs": ("\n".join([*lines[:2], lines[2] + ",x"]) + "\n").encode(),
        "semicolons": (lines[0].replace(",", ";") + "\n").encode(),
    }


BAD_FILES = {
    "empty file": (b"", "empty_file", None, None),
    "blank lines only": (b"\n \n\t\r\n\n", "empty_file", None, None),
    "header only": ((HEADER + "\n").encode(), "no_records", None, None),
    "header and blank lines": ((HEADER + "\n\n\n").encode(), "no_records", None, None),
    **{f"field count: {name}": (data, "field_count", 3 if "line 3" in name else 1, None)
       for name, data in field_count_cases().items()},
    "tab and comma on one line": (
        good_lines(1)[0].replace(",", "\t", 3).encode(), "mixed_separators", 1, None),
    "tab line in a comma file": (
        ("\n".join([good_lines(2)[0], good_lines(2)[1].replace(",", "\t")]) + "\n").encode(),
        "mixed_separators", 2, None),
    "NaN": (with_field(4, "NaN", line=2), "invalid_value", 2, "src_bytes"),
    "nan lower case": (with_field(5, "nan", line=1), "invalid_value", 1, "dst_bytes"),
    "inf": (with_field(0, "inf", line=3), "invalid_value", 3, "duration"),
    "-Infinity": (with_field(22, "-Infinity", line=1), "invalid_value", 1, "count"),
    "overflow to inf": (with_field(4, "1e400", line=1), "invalid_value", 1, "src_bytes"),
    "negative": (with_field(4, "-1", line=4), "invalid_value", 4, "src_bytes"),
    "negative rate": (with_field(24, "-0.5", line=1), "invalid_value", 1, "serror_rate"),
    "not a number": (with_field(4, "12abc", line=2), "invalid_value", 2, "src_bytes"),
    "hex": (with_field(4, "0x10", line=2), "invalid_value", 2, "src_bytes"),
    "empty number": (with_field(4, "", line=2), "invalid_value", 2, "src_bytes"),
    "empty category": (with_field(2, " ", line=2), "invalid_value", 2, "service"),
    "latin-1 byte": (with_field(2, "caf\xe9", line=3).replace(b"caf\xc3\xa9", b"caf\xe9"),
                     "encoding", 3, None),
    "lone continuation byte": (b"\x80" + good_lines(1)[0].encode(), "encoding", 1, None),
    "UTF-16 text": (("\n".join(good_lines(2))).encode("utf-16"), "binary_data", 1, None),
    "NUL bytes": (b"\x00" * 64, "binary_data", 1, None),
    "ELF binary": (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8, "binary_data", 1, None),
    "PNG image": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "binary_data", 3, None),
    "escape sequence": (with_field(2, "\x1b[31mhttp", line=2), "binary_data", 2, None),
    "zip archive": (b"PK\x03\x04" + bytes(range(40)) * 3, "binary_data", 1, None),
    "corrupt gzip": (b"\x1f\x8b\x08\x00" + b"garbage" * 20, "invalid_format", None, None),
    "truncated gzip": (gzip.compress(synthetic_kdd(50, 10))[:-30], "invalid_format", None,
                       None),
}


@pytest.mark.parametrize(("data", "error_type", "line", "column"), list(BAD_FILES.values()),
                         ids=list(BAD_FILES))
def test_bad_file_is_refused_with_a_400_naming_what_is_wrong(client, data_dir, data,
                                                             error_type, line, column):
    response = upload(client, data)
    body = assert_json_error(response, 400, error_type)
    if line is not None:
        assert body["problems"][0]["line"] == line, body
        assert body["problems"][0]["column"] == column, body
        assert f"line {line}" in body["error"]
    assert_nothing_kept(data_dir)


def test_multipart_request_without_a_file_is_missing_file(client, data_dir):
    for response in (
        client.post("/api/predict", data={"note": "no file here"},
                    content_type="multipart/form-data"),
        client.post("/api/predict", data={"files": (io.BytesIO(synthetic_kdd(3, 1)), "t.txt")},
                    content_type="multipart/form-data"),  # a file, under another field name
        client.post("/api/predict", data=b"--x--\r\n",
                    content_type="multipart/form-data; boundary=x"),
        client.post("/api/predict", data=synthetic_kdd(3, 1), content_type="text/plain"),
    ):
        assert_json_error(response, 400, "missing_file")
    assert_nothing_kept(data_dir)


def test_truncated_multipart_body_is_a_4xx_and_leaves_no_temp_file(client, data_dir):
    head = (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\n")
    response = client.post("/api/predict", data=head + synthetic_kdd(20, 5)[:500],
                           content_type="multipart/form-data; boundary=x")
    assert 400 <= response.status_code < 500
    assert response.is_json
    assert_nothing_kept(data_dir)


# --- accepted: the same result as the plain file ---------------------------------------------


def scores(body: dict) -> list:
    return [(a["index"], a["anomaly_score"]) for a in body["anomalies"]]


@pytest.mark.parametrize("variant", ["BOM", "CRLF", "BOM and CRLF", "blank lines between",
                                     "trailing blank lines", "spaces around numbers",
                                     "no final newline", "gzip"])
def test_harmless_variants_give_the_same_result_as_the_plain_file(client, variant):
    lines = good_lines(30)
    plain = ("\n".join(lines) + "\n").encode()
    if variant == "BOM":
        data = codecs.BOM_UTF8 + plain
    elif variant == "CRLF":
        data = plain.replace(b"\n", b"\r\n")
    elif variant == "BOM and CRLF":
        data = codecs.BOM_UTF8 + plain.replace(b"\n", b"\r\n")
    elif variant == "blank lines between":
        data = ("\n\n" + "\n\n \n".join(lines) + "\n").encode()
    elif variant == "trailing blank lines":
        data = plain + b"\n" * 5000 + b"  \r\n\t\n"
    elif variant == "spaces around numbers":
        data = ("\n".join(",".join(f" {f} " if f[0].isdigit() else f for f in line.split(","))
                          for line in lines) + "\n").encode()
    elif variant == "no final newline":
        data = plain.rstrip(b"\n")
    else:
        data = gzip.compress(plain)
    expected = summary_of(upload(client, plain))
    body = summary_of(upload(client, data))
    assert body["summary"]["total_samples"] == 30
    assert body["summary"]["anomalies_detected"] == expected["summary"]["anomalies_detected"]
    assert scores(body) == scores(expected)
    assert body["metrics"] == expected["metrics"]


def test_huge_but_finite_numbers_give_a_flagged_result_with_finite_scores(client):
    data = with_field(4, "1e308", line=2) + with_field(5, "123456789012345678901234567890")
    body = summary_of(upload(client, data))
    assert body["summary"]["total_samples"] == 8
    flagged = {a["index"]: a for a in body["anomalies"]}
    for index in (1, 4):  # the two lines with a huge value
        assert index in flagged
        assert np.isfinite(flagged[index]["anomaly_score"])
        assert flagged[index]["top_features"][0]["feature"] in ("src_bytes", "dst_bytes")


def test_unseen_categories_give_a_result_with_the_category_flagged(repo_model_client,
                                                                  kdd_test_lines):
    """Real normal rows of KDDTest+ (repository model), every other one with a service,
    protocol or flag never seen in training: those are flagged as such in top_features."""
    normal = [line for line in kdd_test_lines if line.split(",")[41] == "normal"][:60]
    lines, changed = [], {}
    for i, line in enumerate(normal):
        fields = line.split(",")
        if i % 2:
            position = (1, 2, 3)[i % 3]
            fields[position] = f"zz_unseen_{i}"
            changed[i] = ("protocol_type", "service", "flag")[position - 1]
        lines.append(",".join(fields))
    response = upload(repo_model_client, ("\n".join(lines) + "\n").encode(), query="?limit=1000")
    body = summary_of(response)
    assert body["summary"]["total_samples"] == 60
    by_index = {a["index"]: a for a in body["anomalies"]}
    assert set(changed) <= set(by_index), "an unseen category did not make its row anomalous"
    for index, record in by_index.items():
        unseen = [t for t in record["top_features"] if t.get("unseen_category")]
        if index in changed:
            assert [(t["feature"], t["value"]) for t in unseen] == [
                (changed[index], f"zz_unseen_{index}")]
        else:
            assert unseen == []


@pytest.fixture
def repo_model_client(data_dir):
    """The committed model, trained on KDDTrain+ (it knows the real categories)."""
    return make_app(REPO_ROOT / "models", data_dir).test_client()


# --- size limits: too big is refused early, and memory stays bounded ------------------------


def test_a_single_line_over_the_upload_limit_is_413(model_dir, data_dir, monkeypatch):
    monkeypatch.setenv("ANOMALYZE_MAX_UPLOAD_MB", "2")
    app = make_app(model_dir, data_dir)
    assert app.config["MAX_UPLOAD_MB"] == 2.0
    response = upload(app.test_client(), b"7" * (3 * MB))  # one 3 MB line, no newline
    body = assert_json_error(response, 413, "too_large")
    assert "2 MB" in body["error"]
    assert_nothing_kept(data_dir)


def test_a_line_longer_than_the_parsers_maximum_is_a_400(client, data_dir):
    lines = good_lines(3)
    data = ("\n".join(lines) + "\n").encode() + b"1," * (PARSER_MAX_LINE // 2 + 10) + b"\n"
    body = assert_json_error(upload(client, data), 400, "invalid_format")
    assert body["problems"][0]["line"] == 4
    assert "longer than 1 MB" in body["error"]
    assert_nothing_kept(data_dir)


def gzip_bomb(block: bytes, total: int) -> bytes:
    """One gzip member that inflates ``block`` repeated to ``total`` bytes."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [packer.compress(block) for _ in range(total // len(block))]
    return b"".join([*parts, packer.flush()])


@pytest.fixture(scope="module")
def newline_bomb() -> bytes:
    """~1 MB that inflates to 1 GiB + 1 MiB of blank lines: past the default decompressed
    limit, and a billion lines for the parser to get through before it gets there."""
    return gzip_bomb(b"\n" * MB, DEFAULT_MAX_DECOMPRESSED_BYTES + MB)


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_gzip_bomb_of_blank_lines_is_413_before_the_worker_timeout(client, data_dir,
                                                                   newline_bomb, capsys):
    """The decompressed limit stops it, and it gets there well within gunicorn's 120 s
    worker timeout (blank lines used to be read one at a time: 280 s)."""
    assert len(newline_bomb) < 2 * MB
    started = time.perf_counter()
    response = upload(client, newline_bomb, name="bomb.txt.gz")
    elapsed = time.perf_counter() - started
    body = assert_json_error(response, 413, "too_large")
    assert "1024 MB" in body["error"]
    assert_nothing_kept(data_dir)
    with capsys.disabled():
        print(f"\n[robustness] 1 GiB newline gzip bomb ({len(newline_bomb)} bytes): "
              f"413 after {elapsed:.1f} s")


@pytest.mark.slow
def test_gzip_bomb_of_records_is_413_with_bounded_memory(model_dir, data_dir, monkeypatch,
                                                         capsys):
    """64 MiB of valid records in a 0.2 MB gzip, with the decompressed limit lowered to 8 MB:
    refused once 8 MB are inflated, never holding more than a few blocks in memory."""
    monkeypatch.setenv("ANOMALYZE_MAX_DECOMPRESSED_MB", "8")
    client = make_app(model_dir, data_dir).test_client()  # settings are read at start-up
    line = (good_lines(1)[0] + "\n").encode()
    bomb = gzip_bomb(line * (MB // len(line)), 64 * MB)
    assert len(bomb) < 512 * 1024
    tracemalloc.start()
    try:
        response = upload(client, bomb, name="records.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    body = assert_json_error(response, 413, "too_large")
    assert "8 MB" in body["error"]
    with capsys.disabled():
        print(f"\n[robustness] 64 MiB gzip bomb of records ({len(bomb)} bytes), 8 MB limit: "
              f"413, peak traced allocation {peak / MB:.1f} MB")
    assert peak < 48 * MB, f"peak Python allocation {peak / MB:.0f} MB for an 8 MB limit"
    assert_nothing_kept(data_dir)


# --- what is kept, and where ---------------------------------------------------------------

HOSTILE_NAMES = [
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\evil.txt",
    "/etc/cron.d/evil",
    "$(touch {tmp}/pwned).txt",
    "`touch {tmp}/pwned`;rm -rf ~;.csv",
    "a|b&c>d<e'f\"g.txt",
    "name with spaces and ünïcødé.txt",
    "....//....//x.txt",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "x" * 1000 + ".txt",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_file_name_is_stored_under_its_hash_name_inside_the_data_dir(
        model_dir, tmp_path, name):
    data_dir = tmp_path / "srv" / "data"
    client = make_app(model_dir, data_dir).test_client()
    before = files_under(tmp_path)
    data = synthetic_kdd(20, 5, seed=len(name))
    body = summary_of(upload(client, data, name=name.format(tmp=tmp_path)))
    assert body["summary"]["stored"] is True
    names = stored_files(data_dir)
    assert len(names) == 1 and STORED_NAME.match(names[0]), names
    assert names[0].split("-")[1].split(".")[0] == hashlib.sha256(data).hexdigest()[:16]
    created = files_under(tmp_path) - before
    assert all(data_dir in path.parents for path in created), created
    assert not any(path.name.startswith(".upload-") for path in created)
    assert not (tmp_path / "pwned").exists()


# --- JSON nested a thousand deep ---------------------------------------------------------------

DEEP = 1000


def deep_list(depth: int = DEEP) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_object(depth: int = DEEP) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("body", [
    b'{"records": ' + deep_list() + b"}",
    b'{"records": [' + deep_object() + b"]}",
    deep_list(100_000),
], ids=["records", "a record", "the whole body, 100,000 deep"])
def test_json_body_nested_a_thousand_deep_is_a_400(client, body, log_lines):
    response = client.post("/api/predict-json", data=body, content_type="application/json")
    assert_json_error(response, 400, "invalid_json")
    assert "nested too deeply" in response.get_json()["error"]
    assert not [line for line in log_lines if line["level"] == "error"], log_lines


@pytest.mark.parametrize("line", [
    b'{"ts": 1.0, "uid": "C1", "extra": ' + deep_list() + b"}",
    deep_object(),
], ids=["a field", "the whole line"])
def test_json_zeek_upload_nested_a_thousand_deep_is_a_400(client, data_dir, line, log_lines):
    response = upload(client, line + b"\n", name="conn.log")
    assert_json_error(response, 400, "invalid_json")
    assert stored_files(data_dir) == [] and leftover_temp_files(data_dir) == []
    assert not [line for line in log_lines if line["level"] == "error"], log_lines


def test_rollback_body_nested_a_thousand_deep_is_a_400(model_dir, data_dir, log_lines):
    client = make_app(model_dir, data_dir, ADMIN_TOKEN="s3cret").test_client()
    response = client.post("/api/models/rollback", data=b'{"version": ' + deep_list() + b"}",
                           headers={"Authorization": "Bearer s3cret"},
                           content_type="application/json")
    assert_json_error(response, 400, "invalid_json")
    assert not [line for line in log_lines if line["level"] == "error"], log_lines


def test_a_recursion_error_outside_the_json_parser_is_still_a_logged_500(client, monkeypatch,
                                                                         log_lines):
    def runaway(_body):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("server.predict.parse_json_records", runaway)
    response = client.post("/api/predict-json", json={"records": [[0] * 41]})
    assert_json_error(response, 500, "internal_error")
    assert [line for line in log_lines if line["level"] == "error"]
