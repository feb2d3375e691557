"""Test helpers around promtool and the metric names processor/metrics.py exposes.

Tests that need promtool fail (never skip) when it is missing: ``make tools`` installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from processor import metrics

PROMTOOL_TIMEOUT_SECONDS = 60
METRIC_NAME = re.compile(r"\btrengo_processor_[a-z_]+\b")
# The series names prometheus_client adds to a metric family of each type.
_SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def run_promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args``; fails the test with a hint when promtool is not installed."""
    executable = shutil.which("promtool")
    assert executable is not None, "promtool not found on PATH: run `make tools`"
    return subprocess.run(
        [executable, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
        check=False,
    )


def exposed_series_names(registry: CollectorRegistry = metrics.REGISTRY) -> set[str]:
    """Every series name the registry can expose, whether or not a label child exists yet."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SERIES_SUFFIXES[family.type])
    return names


def referenced_metric_names(promql: str) -> set[str]:
    """The ``trengo_processor_*`` names a PromQL expression mentions."""
    return set(METRIC_NAME.findall(promql))


def rule_file_of(expressions: dict[str, str]) -> str:
    """A Prometheus rule file recording each expression under its key, for ``check rules``."""
    rules = [{"record": record, "expr": expr} for record, expr in expressions.items()]
    return yaml.safe_dump({"groups": [{"name": "promql-under-test", "rules": rules}]})
