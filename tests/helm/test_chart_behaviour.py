"""What the rendered chart does: the config it hands the processor, secrets, probes, scaling."""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.config import ENV_PREFIX, TOKEN_ENV, TransformationConfig, load_settings
from processor.pipeline.transform import SAMPLE_EVENT, check_on_sample, load_transformation
from tests.helm.support import CHART_DIR, RELEASE, Rendered, render, render_all_on

ALL_ON = yaml.safe_load(Path(__file__).with_name("values-all-on.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No processor settings leak in from the environment running the tests."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) or name == TOKEN_ENV:
            monkeypatch.delenv(name)
    return monkeypatch


def write_config(rendered: Rendered, directory: Path) -> Path:
    """The ConfigMap's config.yaml as the pod sees it, written to a file."""
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(rendered.config()), encoding="utf-8")
    return path


def secret_value(rendered: Rendered, secret_name: str, key: str) -> str:
    """A decoded value of the rendered Secret."""
    secret = rendered.only("Secret")
    assert secret["metadata"]["name"] == secret_name
    return base64.b64decode(secret["data"][key]).decode()


def resolved_env(rendered: Rendered) -> dict[str, str]:
    """The container's environment with each secretKeyRef read from the rendered Secret."""
    env = {}
    for variable in rendered.container().get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secret_value(rendered, ref["name"], ref["key"])
    return env


def test_all_on_config_loads_into_the_config_model(
    rendered_all_on: Rendered, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv(TOKEN_ENV, "token-from-env")
    settings = load_settings(write_config(rendered_all_on, tmp_path))
    assert settings.destination.channelId == ALL_ON["config"]["destination"]["channelId"]
    assert settings.delivery.shutdown_timeout_seconds == 42.5
    assert settings.kafka.max_poll_interval_ms == ALL_ON["config"]["kafka"]["max_poll_interval_ms"]
    assert [m.from_ for m in settings.destination.eventTemplateMap] == [
        "Order Completed",
        "Refund Requested",
    ]
    assert settings.destination.eventTemplateMap[0].labels == ("order",)
    assert [(m.trait, m.fieldId) for m in settings.destination.customFieldMap] == [("plan", 1001)]
    assert settings.destination.profileKeyFieldId == 2001


def test_default_config_loads_once_the_channel_is_set(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv(TOKEN_ENV, "token-from-env")
    rendered = render("--set", "config.destination.channelId=777")
    settings = load_settings(write_config(rendered, tmp_path))
    assert settings.destination.channelId == "777"
    assert settings.server.port == 9400


def test_token_file_is_where_the_secret_is_mounted(
    rendered_all_on: Rendered, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    token_path = Path(rendered_all_on.config()["trengo"]["api_token_file"])
    secret_volume = next(v for v in rendered_all_on.pod_spec()["volumes"] if "secret" in v)
    mount = next(
        m for m in rendered_all_on.container()["volumeMounts"] if m["name"] == secret_volume["name"]
    )
    (item,) = secret_volume["secret"]["items"]
    assert token_path == Path(mount["mountPath"]) / item["path"]
    token = secret_value(rendered_all_on, secret_volume["secret"]["secretName"], item["key"])
    assert token == ALL_ON["auth"]["trengoApiToken"]
    # The pod's view: the file holds the Secret's value and nothing else provides a token.
    local_token_file = tmp_path / "api-token"
    local_token_file.write_text(token, encoding="utf-8")
    clean_environment.setenv(f"{ENV_PREFIX}TRENGO__API_TOKEN_FILE", str(local_token_file))
    assert load_settings(write_config(rendered_all_on, tmp_path)).api_token == token


def test_sasl_credentials_reach_the_kafka_settings(
    rendered_all_on: Rendered, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv(TOKEN_ENV, "token-from-env")
    for name, value in resolved_env(rendered_all_on).items():
        clean_environment.setenv(name, value)
    settings = load_settings(write_config(rendered_all_on, tmp_path))
    assert settings.kafka.settings["sasl.username"] == ALL_ON["auth"]["kafkaSasl"]["username"]
    assert settings.kafka.settings["sasl.password"] == ALL_ON["auth"]["kafkaSasl"]["password"]
    assert settings.kafka.settings["sasl.mechanism"] == "SCRAM-SHA-512"


def test_config_map_holds_no_secret(rendered_all_on: Rendered) -> None:
    config_maps = [d for d in rendered_all_on.documents if d["kind"] == "ConfigMap"]
    config_text = "\n".join(text for d in config_maps for text in d["data"].values())
    assert ALL_ON["auth"]["trengoApiToken"] not in config_text
    assert ALL_ON["auth"]["kafkaSasl"]["password"] not in config_text
    assert not {"sasl.username", "sasl.password"} & set(
        rendered_all_on.config()["kafka"]["settings"]
    )
    assert "apiToken" not in rendered_all_on.config()["destination"]


def test_existing_secret_replaces_the_chart_secret() -> None:
    rendered = render_all_on("--set", "auth.existingSecret=ops-managed")
    assert "Secret" not in rendered.kinds()
    secret_refs = {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for variable in rendered.container()["env"]
        if "valueFrom" in variable
    }
    token_volume = next(v for v in rendered.pod_spec()["volumes"] if "secret" in v)
    trigger_auth = rendered.only("TriggerAuthentication")["spec"]["secretTargetRef"]
    assert secret_refs == {"ops-managed"}
    assert token_volume["secret"]["secretName"] == "ops-managed"
    assert {ref["name"] for ref in trigger_auth} == {"ops-managed"}


@pytest.mark.parametrize("variant", ["rendered_default", "rendered_all_on"])
def test_grace_period_outlasts_the_shutdown_timeout(
    variant: str, request: pytest.FixtureRequest
) -> None:
    rendered: Rendered = request.getfixturevalue(variant)
    shutdown_timeout = rendered.config()["delivery"]["shutdown_timeout_seconds"]
    grace = rendered.pod_spec()["terminationGracePeriodSeconds"]
    margin = yaml.safe_load((CHART_DIR / "values.yaml").read_text())[
        "terminationGraceMarginSeconds"
    ]
    assert grace >= shutdown_timeout + margin


def test_rollout_never_adds_a_consumer(rendered_all_on: Rendered) -> None:
    strategy = rendered_all_on.only("Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxSurge"] == 0


def test_probes_and_service_follow_the_server_port() -> None:
    rendered = render("--set", "config.server.port=9555")
    container = rendered.container()
    (port,) = container["ports"]
    assert port["containerPort"] == rendered.config()["server"]["port"] == 9555
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    service = rendered.only("Service")["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    # A pod halted on a rejected token is unready; its metrics must still be scraped.
    assert service["publishNotReadyAddresses"] is True


def test_pod_runs_non_root_on_a_read_only_root(rendered_default: Rendered) -> None:
    pod_security = rendered_default.pod_spec()["securityContext"]
    container_security = rendered_default.container()["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] > 0
    assert container_security["readOnlyRootFilesystem"] is True
    assert container_security["allowPrivilegeEscalation"] is False
    assert container_security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize(
    ("requests_per_minute", "per_pod", "partitions", "max_replicas"),
    [
        (600, 200, 6, 10),  # the Trengo budget caps: ceil(600 / 200) = 3
        (250, 120, 6, 10),  # rounded up: ceil(2.08) = 3
        (6000, 100, 4, 10),  # the partitions cap
        (6000, 100, 12, 5),  # autoscaling.maxReplicas caps
    ],
)
def test_keda_maximum_is_capped_by_partitions_and_budget(
    requests_per_minute: int, per_pod: int, partitions: int, max_replicas: int
) -> None:
    rendered = render_all_on(
        "--set",
        f"config.trengo.requests_per_minute={requests_per_minute}",
        "--set",
        f"autoscaling.perPodRequestsPerMinute={per_pod}",
        "--set",
        f"kafkaTopicPartitions={partitions}",
        "--set",
        f"autoscaling.maxReplicas={max_replicas}",
        "--set",
        "replicaCount=1",
    )
    expected = min(max_replicas, partitions, math.ceil(requests_per_minute / per_pod))
    scaled_object = rendered.only("ScaledObject")["spec"]
    assert scaled_object["maxReplicaCount"] == expected
    assert "replicas" not in rendered.only("Deployment")["spec"]


def test_keda_reads_the_lag_of_the_processor_group(rendered_all_on: Rendered) -> None:
    trigger = rendered_all_on.only("ScaledObject")["spec"]["triggers"][0]
    kafka = rendered_all_on.config()["kafka"]
    assert trigger["metadata"]["consumerGroup"] == kafka["group_id"]
    assert trigger["metadata"]["topic"] == kafka["topic"]
    assert trigger["metadata"]["bootstrapServers"] == kafka["bootstrap_servers"]
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "enable")
    assert (
        trigger["authenticationRef"]["name"]
        == rendered_all_on.only("TriggerAuthentication")["metadata"]["name"]
    )


def test_prometheus_rule_is_the_alerts_file(rendered_all_on: Rendered) -> None:
    alerts: dict[str, Any] = yaml.safe_load((CHART_DIR / "rules" / "alerts.yaml").read_text())
    assert rendered_all_on.only("PrometheusRule")["spec"]["groups"] == alerts["groups"]


def test_dashboard_config_map_holds_the_dashboard_for_the_sidecar(
    rendered_all_on: Rendered,
) -> None:
    dashboard_file = CHART_DIR / "dashboards" / "trengo-processor.json"
    (config_map,) = [
        d
        for d in rendered_all_on.documents
        if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["trengo-processor.json"])
    assert dashboard == json.loads(dashboard_file.read_text(encoding="utf-8"))


def test_optional_parts_are_off_by_default(rendered_default: Rendered) -> None:
    assert sorted(rendered_default.kinds()) == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    assert "env" not in rendered_default.container()


def test_the_online_check_hook_is_off_by_default(rendered_default: Rendered) -> None:
    assert rendered_default.hooks() == []


def test_the_online_check_hook_runs_check_config_online_before_install_and_upgrade(
    rendered_all_on: Rendered,
) -> None:
    hooks = {document["kind"]: document for document in rendered_all_on.hooks()}
    assert sorted(hooks) == ["ConfigMap", "Job", "NetworkPolicy", "Secret"]
    for document in hooks.values():
        assert document["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weights = {
        kind: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for kind, d in hooks.items()
    }
    assert weights["Job"] > max(weight for kind, weight in weights.items() if kind != "Job")
    job = hooks["Job"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:3] == ["trengo-processor", "check-config", "--online"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], pod["restartPolicy"]) == (
        0,
        ALL_ON["onlineCheck"]["activeDeadlineSeconds"],
        "Never",
    )
    # The same config and token as the processor, from hook copies that exist before install.
    hook_config = yaml.safe_load(hooks["ConfigMap"]["data"]["config.yaml"])
    assert hook_config == rendered_all_on.config()
    token = base64.b64decode(hooks["Secret"]["data"]["api-token"]).decode()
    assert token == ALL_ON["auth"]["trengoApiToken"]
    assert set(hooks["Secret"]["data"]) == {"api-token"}  # no Kafka credentials
    # Not a processor pod: the Service, the PDB and the processor's NetworkPolicy skip it.
    selector = rendered_all_on.only("Deployment")["spec"]["selector"]["matchLabels"]
    pod_labels = job["template"]["metadata"]["labels"]
    assert not selector.items() <= pod_labels.items()
    assert hooks["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"] == pod_labels


def test_the_online_check_reads_an_existing_secret_directly() -> None:
    rendered = render_all_on("--set", "auth.existingSecret=ops-managed")
    hooks = {document["kind"]: document for document in rendered.hooks()}
    assert "Secret" not in hooks
    volumes = hooks["Job"]["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if "secret" in v)["secret"]["secretName"] == "ops-managed"


def test_metrics_port_admits_only_the_monitoring_namespace_by_default(
    rendered_default: Rendered,
) -> None:
    (rule,) = rendered_default.only("NetworkPolicy")["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_metrics_sources_can_be_widened_to_any() -> None:
    rendered = render("--set-json", "networkPolicy.metricsFrom=[]")
    (rule,) = rendered.only("NetworkPolicy")["spec"]["ingress"]
    assert "from" not in rule


TRANSFORMATION_DIR = "/etc/trengo-processor-transformation"
# Python is indentation-sensitive and a JS file may start with an indented line: both must reach
# the pod byte for byte.
PYTHON_SOURCE = (
    "def transformEvent(event, metadata):\n"
    "    if event.get('event') == 'Debug Ping':\n"
    "        return None\n"
    "    return event\n"
)
INDENTED_JS = (
    "  // indented first line\nexport function transformEvent(event) {\n  return event;\n}\n"
)


def mounted_transformation(rendered: Rendered) -> tuple[str, str]:
    """The path the pod sees the transformation at, and its ConfigMap item's contents."""
    volume = next(v for v in rendered.pod_spec()["volumes"] if v["name"] == "transformation")
    mount = next(m for m in rendered.container()["volumeMounts"] if m["name"] == "transformation")
    assert mount["readOnly"] is True
    (item,) = volume["configMap"]["items"]
    config_map = next(
        document
        for document in rendered.documents
        if document["kind"] == "ConfigMap"
        and document["metadata"]["name"] == volume["configMap"]["name"]
    )
    return f"{mount['mountPath']}/{item['path']}", config_map["data"][item["key"]]


@pytest.mark.parametrize(
    ("language", "source", "file_name"),
    [
        ("python", PYTHON_SOURCE, "transformation.py"),
        ("javascript", INDENTED_JS, "transformation.js"),
    ],
)
def test_a_transformation_source_is_mounted_and_wired_to_the_config(
    tmp_path: Path, language: str, source: str, file_name: str
) -> None:
    script = tmp_path / "source"
    script.write_text(source, encoding="utf-8")
    rendered = render_all_on(
        "--set", f"transformationFile.language={language}",
        "--set-file", f"transformationFile.source={script}",
    )  # fmt: skip
    path, contents = mounted_transformation(rendered)
    assert path == f"{TRANSFORMATION_DIR}/{file_name}"
    assert rendered.config()["transformation"][language] == path
    assert contents == source
    # The mounted file as the processor loads it: it compiles and runs on the sample event.
    local = tmp_path / file_name
    local.write_text(contents, encoding="utf-8")
    transformation = load_transformation(TransformationConfig(**{language: str(local)}))
    assert transformation is not None
    assert check_on_sample(transformation) == [SAMPLE_EVENT]


def test_a_changed_transformation_rolls_the_pods() -> None:
    first, second = (
        render_all_on("--set", f"transformationFile.source={code}")
        for code in ("export function transformEvent(e) { return e; }", "// v2")
    )
    annotations = [
        rendered.only("Deployment")["spec"]["template"]["metadata"]["annotations"]
        for rendered in (first, second)
    ]
    assert annotations[0]["checksum/transformation"] != annotations[1]["checksum/transformation"]


def test_an_existing_config_map_supplies_the_transformation() -> None:
    rendered = render(
        "--set", "transformationFile.existingConfigMap=team-transformations",
        "--set", "transformationFile.key=trengo.py",
        "--set", "transformationFile.language=python",
    )  # fmt: skip
    volume = next(v for v in rendered.pod_spec()["volumes"] if v["name"] == "transformation")
    assert volume["configMap"] == {
        "name": "team-transformations",
        "defaultMode": 0o444,
        "items": [{"key": "trengo.py", "path": "transformation.py"}],
    }
    assert (
        rendered.config()["transformation"]["python"] == f"{TRANSFORMATION_DIR}/transformation.py"
    )
    assert [d["metadata"]["name"] for d in rendered.documents if d["kind"] == "ConfigMap"] == [
        f"{RELEASE}-trengo-processor"
    ]


def test_no_transformation_is_mounted_by_default(rendered_default: Rendered) -> None:
    assert "transformation" not in [v["name"] for v in rendered_default.pod_spec()["volumes"]]
    assert rendered_default.config()["transformation"]["javascript"] is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["--set", "transformationFile.existingConfigMap=other"],
            "set source or existingConfigMap, not both",
        ),
        (
            ["--set", "config.transformation.javascript=/elsewhere.js"],
            "leave config.transformation.javascript and python null",
        ),
    ],
)
def test_the_chart_refuses_two_sources_of_transformation(values: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        render_all_on(*values)
