"""The package the ML API and the frontend share (contract/): standard library only, and
carried by the frontend's Vercel deployment, which has neither utils/ nor server/."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contract import record_layout
from contract.json_errors import JsonError
from tests.helpers.repo import imported_roots
from utils import schema

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_contract_package_uses_only_the_standard_library():
    for name, roots in imported_roots("contract").items():
        assert roots <= set(sys.stdlib_module_names) | {"contract"}, (name, roots)


def test_the_frontend_deployment_carries_the_contract_but_not_the_library():
    vercel = json.loads((REPO_ROOT / "vercel.json").read_text())
    (build,) = vercel["builds"]
    assert "contract/**" in build["config"]["includeFiles"]
    assert not any(entry.startswith(("utils/", "server/"))
                   for entry in build["config"]["includeFiles"])


def test_the_library_names_the_same_record_layout_the_frontend_shows():
    assert schema.FEATURE_NAMES is record_layout.FEATURE_NAMES
    assert schema.SEVERITIES is record_layout.SEVERITIES
    assert len(record_layout.FEATURE_NAMES) == record_layout.N_FEATURES == 41


def test_an_error_serialises_to_the_documented_shape():
    error = JsonError(400, "invalid_format", "line 3: bad", [{"line": 3}])
    assert error.to_dict() == {"success": False, "error": "line 3: bad",
                               "error_type": "invalid_format", "problems": [{"line": 3}]}
