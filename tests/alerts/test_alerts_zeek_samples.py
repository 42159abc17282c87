"""ECS alerts of the two real Zeek conn.logs (../shared/data/zeek), scored by the committed
model: every alert valid, every flow that has one joined by its Community ID."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.ecs_fields import alert_problems
from tests.helpers.repo import REPO_ROOT, require_file
from utils.alerts import ecs_alerts
from utils.model_store import load_model
from utils.scoring import iter_scored_chunks

ZEEK_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "zeek"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scenario-malicious.conn.log.labeled",
                                  "ctu-botnet-4.conn.log.labeled"])
def test_real_conn_logs_give_valid_alerts_joined_by_community_id(name: str):
    path = require_file(ZEEK_SAMPLES / name, "../shared/data/zeek beside the repository")
    model = load_model(REPO_ROOT / "models")
    flagged = 0
    alerts = []
    for records, scored in iter_scored_chunks(model, path, chunk_rows=5_000):
        flagged += int(np.count_nonzero(scored.is_anomaly))
        alerts += ecs_alerts(model, records, scored)
    assert len(alerts) == flagged > 0
    for alert in alerts:
        assert alert_problems(alert) == [], alert
        assert alert["anomalyze"]["input_kind"] == "zeek"
        network = alert["network"]
        if network.get("transport") in ("tcp", "udp", "icmp", "ipv6-icmp") and \
                "ip" in alert["source"] and "ip" in alert["destination"]:
            assert network["community_id"].startswith("1:")
