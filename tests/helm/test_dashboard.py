"""Tests for the Grafana dashboard: structure, data source variable, PromQL and metric names."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.promtool import (
    exposed_series_names,
    referenced_metric_names,
    rule_file_of,
    run_promtool,
)

DASHBOARD = (
    Path(__file__).parents[2] / "helm" / "trengo-processor" / "dashboards" / "trengo-processor.json"
)
DATASOURCE_UID = "${datasource}"
GRID_WIDTH = 24
# Grafana's interval variables are not PromQL; any valid duration stands in for them.
GRAFANA_INTERVAL = re.compile(r"\$__(rate_interval|interval|range)\b")
# What an operator looks for first: (metric, the label it is broken down by, if any).
REQUIRED_VIEWS = [
    ("trengo_processor_events_total", "outcome"),
    ("trengo_processor_trengo_requests_total", "operation"),
    ("trengo_processor_rate_limit_remaining", None),
    ("trengo_processor_throttled_seconds_total", None),
    ("trengo_processor_consumer_lag", "partition"),
    ("trengo_processor_dead_letters_total", "stage"),
    ("trengo_processor_skipped_total", "reason"),
    ("trengo_processor_event_delivery_latency_seconds_bucket", "le"),
    ("trengo_processor_retries_total", "reason"),
    ("trengo_processor_destination_up", None),
    ("trengo_processor_inflight_events", None),
]

# Parsed JSON: any shape until the assertions say otherwise.
Panel = dict[str, Any]
Dashboard = dict[str, Any]


@pytest.fixture(scope="module")
def dashboard() -> Dashboard:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def panels(dashboard: Dashboard) -> list[Panel]:
    found = dashboard["panels"]
    assert isinstance(found, list)
    assert found, "the dashboard has no panels"
    return found


def targets_of(panel: Panel) -> list[dict[str, Any]]:
    targets = panel.get("targets")
    assert isinstance(targets, list) and targets, f"panel {panel.get('title')} has no targets"
    return targets


def expressions(panels: list[Panel]) -> dict[str, str]:
    """Every target's expr, keyed by a recording-rule name naming its panel and refId."""
    return {
        f"dashboard:panel_{panel['id']}_{target['refId']}": str(target["expr"])
        for panel in panels
        for target in targets_of(panel)
    }


def test_panel_ids_are_unique_integers(panels: list[Panel]) -> None:
    ids = [panel.get("id") for panel in panels]

    assert all(isinstance(panel_id, int) for panel_id in ids)
    assert len(ids) == len(set(ids))


def test_datasource_variable_is_used_everywhere(dashboard: Dashboard, panels: list[Panel]) -> None:
    variables = dashboard["templating"]["list"]
    [datasource] = [v for v in variables if v["name"] == "datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")

    users = [*panels, *(target for panel in panels for target in targets_of(panel))]
    users += [v for v in variables if v["type"] == "query"]
    assert all(user["datasource"]["uid"] == DATASOURCE_UID for user in users)


def grid_cells(panel: Panel) -> set[tuple[int, int]]:
    position = panel["gridPos"]
    assert isinstance(position, dict)
    x, y, width, height = (position[key] for key in ("x", "y", "w", "h"))
    assert all(isinstance(value, int) for value in (x, y, width, height)), panel["title"]
    assert width > 0 and height > 0 and x >= 0 and y >= 0 and x + width <= GRID_WIDTH
    return {(column, row) for column in range(x, x + width) for row in range(y, y + height)}


def test_panels_have_grid_positions_that_do_not_overlap(panels: list[Panel]) -> None:
    cells = {str(panel["title"]): grid_cells(panel) for panel in panels}

    for (first, first_cells), (second, second_cells) in combinations(cells.items(), 2):
        assert not first_cells & second_cells, f"{first!r} overlaps {second!r}"


def test_every_expression_parses(panels: list[Panel], tmp_path: Path) -> None:
    promql = {
        record: GRAFANA_INTERVAL.sub("5m", expr) for record, expr in expressions(panels).items()
    }
    rule_file = tmp_path / "dashboard-rules.yaml"
    rule_file.write_text(rule_file_of(promql), encoding="utf-8")

    checked = run_promtool("check", "rules", rule_file)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_is_defined_in_processor_metrics(panels: list[Panel]) -> None:
    for record, expr in expressions(panels).items():
        assert referenced_metric_names(expr), f"{record} names no processor metric"
        unknown = referenced_metric_names(expr) - exposed_series_names()
        assert not unknown, f"{record} names metrics processor/metrics.py lacks: {unknown}"


@pytest.mark.parametrize(("metric", "label"), REQUIRED_VIEWS)
def test_required_view_is_on_the_dashboard(
    panels: list[Panel], metric: str, label: str | None
) -> None:
    breakdown = re.compile(rf"\bby \([^)]*\b{label}\b") if label else re.compile("")
    matching = [
        expr
        for expr in expressions(panels).values()
        if metric in referenced_metric_names(expr) and breakdown.search(expr)
    ]

    assert matching, f"no panel shows {metric}" + (f" by {label}" if label else "")


README = Path(__file__).parents[2] / "README.md"
# The dashboard's filter on every metric, which README's panel list leaves out.
_FILTERS = re.compile(
    r', namespace=~"\$namespace", pod=~"\$pod"|\{namespace=~"\$namespace", pod=~"\$pod"\}'
)


def readme_grafana_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### What you see in Grafana")
    return text[start : text.index("\n## ", start)]


def test_readme_lists_every_panel_with_its_promql(dashboard: Dashboard) -> None:
    section = readme_grafana_section()
    for panel in dashboard["panels"]:
        assert f"* **{panel['title']}**: " in section, f"README lacks panel {panel['title']!r}"
        for target in panel["targets"]:
            promql = _FILTERS.sub("", target["expr"])
            assert f"`{promql}`" in section, f"README lacks {panel['title']!r}'s {promql}"


def test_readme_lists_no_panel_the_dashboard_lacks(dashboard: Dashboard) -> None:
    listed = re.findall(r"^\* \*\*(.+?)\*\*: ", readme_grafana_section(), re.MULTILINE)
    assert sorted(listed) == sorted(panel["title"] for panel in dashboard["panels"])
