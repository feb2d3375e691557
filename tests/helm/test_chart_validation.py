"""The chart passes real validators: helm lint, kubernetes-validate --strict, yamllint, its schema.

Custom resources (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication) are not in
kubernetes-validate's schemas; they are checked against tests/helm/crd_schemas.json, strict
schemas written from the operators' documented fields.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from tests.helm.support import (
    CHART_DIR,
    KUBE_VERSION,
    OLDEST_KUBE_VERSION,
    Rendered,
    helm_template,
    render_all_on,
    require_tool,
)

CRD_SCHEMAS = json.loads(Path(__file__).with_name("crd_schemas.json").read_text(encoding="utf-8"))
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}

# Rendered output, not hand-written YAML: the dashboard JSON and PromQL lines are as long as they
# are, and toYaml writes block sequences unindented where the templates indent them.
YAMLLINT_CONFIG = YamlLintConfig(
    """
extends: default
rules:
  line-length: disable
  indentation: {spaces: 2, indent-sequences: whatever}
"""
)


def validate_custom_resource(document: dict[str, Any]) -> None:
    """Validates one custom resource against its schema in crd_schemas.json."""
    schema = {"$defs": CRD_SCHEMAS["$defs"], "$ref": f"#/$defs/{document['kind']}"}
    jsonschema.Draft202012Validator(schema).validate(document)


def validate_rendered(rendered: Rendered, kube_version: str) -> None:
    """Every resource against kubernetes-validate (strict) or its custom-resource schema."""
    for document in rendered.documents:
        if document["kind"] in CUSTOM_KINDS:
            validate_custom_resource(document)
        else:
            kubernetes_validate.validate(document, kube_version, strict=True)


def test_helm_lint_passes_for_default_and_all_on_values() -> None:
    helm = require_tool("helm")
    all_on = str(Path(__file__).with_name("values-all-on.yaml"))
    for extra in ([], ["--values", all_on]):
        result = subprocess.run(
            [helm, "lint", "--strict", str(CHART_DIR), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", [OLDEST_KUBE_VERSION, KUBE_VERSION])
def test_default_render_is_valid_kubernetes(rendered_default: Rendered, kube_version: str) -> None:
    assert not CUSTOM_KINDS & set(rendered_default.kinds())
    validate_rendered(rendered_default, kube_version)


@pytest.mark.parametrize("kube_version", [OLDEST_KUBE_VERSION, KUBE_VERSION])
def test_all_on_render_is_valid_kubernetes(rendered_all_on: Rendered, kube_version: str) -> None:
    assert set(rendered_all_on.kinds()) >= CUSTOM_KINDS
    validate_rendered(rendered_all_on, kube_version)


@pytest.mark.parametrize(
    ("kind", "break_it"),
    [
        ("ServiceMonitor", lambda spec: spec["endpoints"][0].update(scrapeTimout="10s")),
        ("PrometheusRule", lambda spec: spec["groups"][0]["rules"][0].update(expr={"a": 1})),
        ("ScaledObject", lambda spec: spec["triggers"][0]["metadata"].update(lagThreshold=500)),
        ("TriggerAuthentication", lambda spec: spec["secretTargetRef"][0].pop("key")),
    ],
)
def test_custom_resource_schemas_reject_a_broken_resource(
    rendered_all_on: Rendered, kind: str, break_it: Any
) -> None:
    broken = copy.deepcopy(rendered_all_on.only(kind))
    break_it(broken["spec"])
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(broken)


def test_kubernetes_validate_rejects_a_broken_deployment(rendered_all_on: Rendered) -> None:
    broken = copy.deepcopy(rendered_all_on.only("Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("variant", ["rendered_default", "rendered_all_on"])
def test_rendered_output_passes_yamllint(variant: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(variant)
    problems = [str(problem) for problem in linter.run(rendered.text, YAMLLINT_CONFIG)]
    assert problems == []


@pytest.mark.parametrize(
    ("bad_value", "named_in_error"),
    [
        (["--set", "replicaCount=three"], "replicaCount"),
        (["--set", "config.destination.apiToken=secret"], "apiToken"),
        (["--set", "config.kafka.settings.sasl\\.password=secret"], "settings"),
        (["--set", "config.kafka.topc=typo"], "topc"),
        (["--set", "config.log.format=xml"], "format"),
        (["--set", "image.digest=latest"], "digest"),
        (["--set", "config.destination.enableProfiles=true"], "profileKeyFieldId"),
        (["--set", "config.destination.customFieldMap[0].trait=plan"], "fieldId"),
        (["--set", "transformationFile.language=ruby"], "language"),
        (["--set", "transformationFile.key="], "key"),
    ],
)
def test_schema_rejects_a_bad_value(bad_value: list[str], named_in_error: str) -> None:
    result = helm_template(*bad_value)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named_in_error in result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "replicaCount=7"], "exceeds kafkaTopicPartitions 6"),
        (["--set", "kafkaTopicPartitions=null"], "kafkaTopicPartitions is required"),
        (["--set", "autoscaling.minReplicas=4"], "below minReplicas 4"),
        (["--set", "auth.kafkaSasl.username="], "needs auth.kafkaSasl.username"),
    ],
)
def test_chart_refuses_inconsistent_values(values: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        render_all_on(*values)


@pytest.mark.parametrize(
    "credential",
    ["ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "sasl.oauthbearer.client.secret"],
)
def test_schema_refuses_kafka_credentials_in_the_config_map(credential: str) -> None:
    escaped = credential.replace(".", "\\.")
    result = helm_template("--set", f"config.kafka.settings.{escaped}=secret")
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
