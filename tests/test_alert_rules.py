"""The shipped Prometheus alert rules parse and name metrics the registry really exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import Api

RULES = Path(__file__).resolve().parents[1] / "examples" / "prometheus" / "reliquary-alerts.yml"


def test_alert_rules_use_metrics_that_exist(api: Api) -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for group in doc["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} >= {
        "ReliquaryNondeterministicModel",
        "ReliquaryVerificationSlow",
    }
    exported = api.client.get("/metrics").text
    families = set(re.findall(r"^# TYPE (\S+) ", exported, flags=re.M))
    for rule in rules:
        for metric in re.findall(r"reliquary_[a-z_]+", rule["expr"]):
            family = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert family in families, f"{rule['alert']} uses {metric}, not exported"
        assert rule["labels"]["severity"] in ("critical", "warning")
