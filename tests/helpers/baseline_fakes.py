"""Stand-ins for utils.baseline's trainer, health report and gate, for tests of the baseline
job's process and endpoints: they record what they were given and answer as told."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class FakeResult:
    """What ``train_baseline`` returns, with a small real pipeline a model store can keep."""

    pipeline: Pipeline
    card: dict
    health: dict
    figures: dict
    newest: Any = None  # the newest held-out slice, the gate's rows


@dataclass
class Fakes:
    """``warnings``: what the health report warns of; ``promote``: the gate's answer;
    ``crash``: raised by the trainer; ``version``: the candidate's."""

    warnings: list = field(default_factory=list)
    promote: bool = True
    crash: BaseException | None = None
    version: str = "zeek-1"
    calls: list = field(default_factory=list)

    def reporter(self, records) -> dict:
        self.calls.append(("report", len(records), records.input_kind))
        return {"rows": len(records), "warnings": list(self.warnings)}

    def trainer(self, records, *, exclusions=None, random_state=0, source=None,
                progress=lambda message: None) -> FakeResult:
        self.calls.append(("train", len(records), exclusions, source))
        progress("fitting k=5")
        if self.crash is not None:
            raise self.crash
        card = {"model_version": self.version, "created_at": f"2026-11-30T0{len(self.calls)}",
                "input_kind": "zeek"}
        return FakeResult(Pipeline([("scale", StandardScaler())]), card,
                          {"rows": len(records), "warnings": list(self.warnings)},
                          {"false_alarm_rate": 0.01}, newest="newest")

    def contamination(self, report: dict) -> list[dict]:
        """Every warning but a thin baseline's holds the model back."""
        return [w for w in report.get("warnings") or [] if w["code"] != "short_period"]

    def gate(self, current, candidate, newest) -> tuple[bool, str, dict]:
        self.calls.append(("gate", current.version if current else None, newest))
        if self.promote:
            return True, "the first Zeek model" if current is None else "fewer false alarms", {
                "false_alarm_rate_after": 0.01}
        return False, "more false alarms than the current model", {
            "false_alarm_rate_after": 0.2}
