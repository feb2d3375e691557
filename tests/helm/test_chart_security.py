"""Security posture of the rendered chart, by checkov: clean with every optional part on.

checkov runs once per render (about two seconds each). A deliberate exception is a `checkov.io/skip`
annotation in the chart with its reason; the set of exceptions is pinned here so a new one is a
reviewed change, not a quiet addition.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helm.support import NAMESPACE, Rendered, require_tool

# Checks the chart skips on purpose; each reason is in the chart's checkov.io/skip annotation.
DELIBERATE_EXCEPTIONS = {"CKV_K8S_35"}  # SASL credentials as env: librdkafka has no file form
# "Image should use digest" and "Image Pull Policy should be Always" (a digest satisfies both).
UNPINNED_IMAGE_CHECKS = {"CKV_K8S_43", "CKV_K8S_15"}


def run_checkov(rendered: Rendered, directory: Path) -> Any:
    """checkov's JSON report on one render."""
    manifest = directory / "rendered.yaml"
    manifest.write_text(rendered.text, encoding="utf-8")
    result = subprocess.run(
        [
            require_tool("checkov"),
            "--file",
            str(manifest),
            "--framework",
            "kubernetes",
            "--skip-download",  # offline: no policy metadata from the vendor's platform
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=directory,
    )
    assert result.stdout, f"checkov printed nothing:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def checkov_results(rendered_all_on: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """checkov's report on the all-on render."""
    return run_checkov(rendered_all_on, tmp_path_factory.mktemp("checkov-all-on"))


def test_no_failed_check(checkov_results: Any) -> None:
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in checkov_results["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_results["summary"]["parsing_errors"] == 0


def test_the_pod_spec_was_actually_checked(checkov_results: Any) -> None:
    checked_resources = {check["resource"] for check in checkov_results["results"]["passed_checks"]}
    assert f"Deployment.{NAMESPACE}.rel-trengo-processor" in checked_resources
    assert len(checkov_results["results"]["passed_checks"]) >= 50


def test_skips_are_the_deliberate_exceptions_with_reasons(checkov_results: Any) -> None:
    skipped = checkov_results["results"]["skipped_checks"]
    assert {check["check_id"] for check in skipped} == DELIBERATE_EXCEPTIONS
    for check in skipped:
        assert len(check["check_result"]["suppress_comment"]) > 20, check["check_id"]


def test_defaults_fail_only_for_the_unpinned_image(
    rendered_default: Rendered, tmp_path: Path
) -> None:
    # The chart cannot know the digest of the operator's build; image.digest fixes both checks.
    report = run_checkov(rendered_default, tmp_path)
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    assert failed == UNPINNED_IMAGE_CHECKS
