"""Tests for the alert rules: promtool check and unit tests, coverage and metric names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promtool import exposed_series_names, referenced_metric_names, run_promtool

RULES_DIR = Path(__file__).parents[2] / "helm" / "trengo-processor" / "rules"
ALERTS = RULES_DIR / "alerts.yaml"
ALERT_TESTS = RULES_DIR / "alerts.test.yaml"
# Not ours: kube-state-metrics' pod readiness and Prometheus' own scrape health. Readiness is
# what Kubernetes decided from /readyz; `up` catches a pod whose metrics endpoint stopped answering.
FOREIGN_METRICS = {"kube_pod_status_ready", "up"}
# A selector's metric name: an identifier directly followed by its label matchers.
SELECTOR_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
SERIES_NAME = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
REQUIRED_ALERTS = {
    "TrengoProcessorLagGrowing",
    "TrengoProcessorNoCommit",
    "TrengoProcessorDeadLetterRate",
    "TrengoProcessorDestinationDown",
    "TrengoProcessorDeadLetterHalt",
    "TrengoProcessorRateLimited",
    "TrengoProcessorPodNotReady",
    "TrengoProcessorPartitionStalled",
}


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule, by alert name."""
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    by_name = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert len(by_name) == len(rules), "duplicate alert names or recording rules in alerts.yaml"
    return by_name


@pytest.fixture(scope="module")
def unit_tests() -> list[dict[str, Any]]:
    tests = load_yaml(ALERT_TESTS)["tests"]
    assert isinstance(tests, list)
    return tests


def known_metric_names() -> set[str]:
    return exposed_series_names() | FOREIGN_METRICS


def test_rules_pass_promtool_check() -> None:
    checked = run_promtool("check", "rules", ALERTS)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_pass_their_promtool_unit_tests() -> None:
    tested = run_promtool("test", "rules", ALERT_TESTS)

    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_issue_alerts_exist_with_severity_and_summary(
    alert_rules: dict[str, dict[str, Any]],
) -> None:
    assert set(alert_rules) >= REQUIRED_ALERTS
    for name, rule in alert_rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name


@pytest.mark.parametrize(("outcome", "fires"), [("firing", True), ("silent", False)])
def test_every_alert_has_a_firing_and_a_silent_case(
    alert_rules: dict[str, dict[str, Any]],
    unit_tests: list[dict[str, Any]],
    outcome: str,
    fires: bool,
) -> None:
    covered = {
        case["alertname"]
        for test in unit_tests
        for case in test.get("alert_rule_test", [])
        if bool(case.get("exp_alerts")) is fires
    }

    missing = set(alert_rules) - covered
    assert not missing, f"no {outcome} case in alerts.test.yaml for {sorted(missing)}"


def test_rules_name_only_known_metrics(alert_rules: dict[str, dict[str, Any]]) -> None:
    for name, rule in alert_rules.items():
        named = referenced_metric_names(rule["expr"]) | set(SELECTOR_NAME.findall(rule["expr"]))
        unknown = named - known_metric_names()
        assert not unknown, f"{name} names metrics processor/metrics.py lacks: {unknown}"


def test_unit_tests_feed_only_known_metrics(unit_tests: list[dict[str, Any]]) -> None:
    fed = {
        match.group(1)
        for test in unit_tests
        for series in test["input_series"]
        if (match := SERIES_NAME.match(series["series"]))
    }

    assert fed, "alerts.test.yaml feeds no series"
    assert fed <= known_metric_names(), fed - known_metric_names()
