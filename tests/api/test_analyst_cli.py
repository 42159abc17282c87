"""analyst_admin.py: the allow-list and feedback from a shell, on the API's registry."""

from __future__ import annotations

import hashlib
import io

import pytest

import analyst_admin
from server import create_app
from tests.helpers.zeek_logs import zeek_sample
from utils.registry import SQLiteRegistry


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("ANOMALYZE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ANOMALYZE_DATABASE_URL", raising=False)
    return tmp_path / "data"


def test_add_list_remove_an_entry(data, capsys):
    assert analyst_admin.main(["allowlist", "add", "--host", "10.0.0.0/24", "--reason",
                               "backups"]) == 0
    assert "added entry 1 (cidr)" in capsys.readouterr().out
    (entry,) = SQLiteRegistry(data).allow_entries()
    assert entry.added_by.startswith("cli:")
    assert analyst_admin.main(["allowlist", "list"]) == 0
    assert "host=10.0.0.0/24" in capsys.readouterr().out
    assert analyst_admin.main(["allowlist", "add", "--host", "10.0.0.0/24", "--reason",
                               "again"]) == 1
    assert "(id 1)" in capsys.readouterr().err
    assert analyst_admin.main(["allowlist", "remove", "1"]) == 0
    assert SQLiteRegistry(data).allow_entries() == []
    assert analyst_admin.main(["allowlist", "remove", "1"]) == 1


def test_a_malformed_field_is_named(data, capsys):
    assert analyst_admin.main(["allowlist", "add", "--port", "99999", "--reason", "x"]) == 1
    assert capsys.readouterr().err.startswith("error: port:")


def test_apply_reapplies_the_list_to_a_scored_csv(data, model_dir, tmp_path, capsys):
    client = create_app({"TESTING": True, "MODEL_DIR": model_dir,
                         "DATA_DIR": data}).test_client()
    scored = client.post("/api/predict?format=csv",
                         data={"file": (io.BytesIO(zeek_sample()), "conn.log")},
                         content_type="multipart/form-data").get_data()
    (tmp_path / "scored.csv").write_bytes(scored)
    analyst_admin.main(["allowlist", "add", "--source", "10.0.0.9", "--reason", "scanner"])
    capsys.readouterr()
    out = tmp_path / "out.csv"
    assert analyst_admin.main(["allowlist", "apply", str(tmp_path / "scored.csv"), "-o",
                               str(out)]) == 0
    assert "10 allow-listed" in capsys.readouterr().err
    assert out.read_text().count(",true,1\n") == 10


def test_feedback_on_a_kept_upload(data, model_dir, capsys):
    client = create_app({"TESTING": True, "MODEL_DIR": model_dir,
                         "DATA_DIR": data}).test_client()
    client.post("/api/predict", data={"file": (io.BytesIO(zeek_sample()), "conn.log")},
                content_type="multipart/form-data")
    sha = hashlib.sha256(zeek_sample()).hexdigest()
    assert analyst_admin.main(["feedback", "add", sha, "--records", "0,C1",
                               "--verdict", "false_positive", "--note", "lab"]) == 0
    assert SQLiteRegistry(data).feedback_counts()["false_positive_waiting"] == 2
    assert analyst_admin.main(["feedback", "add", "0" * 64, "--records", "1",
                               "--verdict", "true_positive"]) == 1
