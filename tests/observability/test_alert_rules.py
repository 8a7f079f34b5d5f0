"""The alerting rules load and fire on recorded samples (deploy/prometheus/alerts.test.yml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install Debian's `prometheus` package (apt-get install prometheus)",
)


@needs_promtool
def test_the_rules_file_is_valid():
    result = subprocess.run(
        [PROMTOOL, "check", "rules", "alerts.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alerts_fire_on_recorded_samples():
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _alerts() -> list[dict]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_runbook_paragraph_and_a_recorded_test():
    docs = DOCS.read_text()
    tested = (RULES / "alerts.test.yml").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^### (\w+)", docs, flags=re.M)}
    for rule in _alerts():
        name = rule["alert"]
        assert name.lower() in headings, f"{name} has no runbook paragraph in docs/alerts.md"
        assert rule["annotations"]["runbook"] == f"docs/alerts.md#{name.lower()}"
        assert rule["labels"]["severity"] in {"page", "warning", "ticket"}
    untested = {
        "PspLatencyHigh",
        "PspWebhookDeadLetters",
        "IntentsNeedReview",
        "CeleryQueueBacklog",
        "MoneyAuditNotRun",
    }
    for rule in _alerts():
        if rule["alert"] not in untested:
            assert f"alertname: {rule['alert']}" in tested, rule["alert"]
