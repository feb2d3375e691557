"""Helpers for the chart and image tests: find the external tools, render the chart, pick resources.

The tools (helm, checkov, hadolint) come from `make tools`, which installs them into .tools/bin;
`make test` puts that directory on PATH. A missing tool fails the test with that instruction:
a check that silently does not run is no check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "trengo-processor"
ALL_ON_VALUES = Path(__file__).with_name("values-all-on.yaml")
RELEASE = "rel"
NAMESPACE = "trengo"
# A current Kubernetes release that kubernetes-validate ships schemas for, and the chart's floor.
KUBE_VERSION = "1.34.0"
OLDEST_KUBE_VERSION = "1.25.0"


def require_tool(name: str) -> str:
    """The tool's path, from PATH or the project's .tools/bin; fails the test when missing."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), str(REPO_ROOT / ".tools" / "bin")])
    found = shutil.which(name, path=search_path)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make tools` (it installs into .tools/bin)")
    return found


@dataclass(frozen=True)
class Rendered:
    """The output of one `helm template`: the YAML text and its parsed documents."""

    text: str
    documents: tuple[dict[str, Any], ...]

    def kinds(self) -> list[str]:
        """The kinds of all rendered resources, in order."""
        return [document["kind"] for document in self.documents]

    def only(self, kind: str) -> dict[str, Any]:
        """The single release resource (not a hook) of this kind; fails when there are none or
        several."""
        matching = [
            document
            for document in self.documents
            if document["kind"] == kind and not is_hook(document)
        ]
        assert len(matching) == 1, f"expected one {kind}, rendered {self.kinds()}"
        return matching[0]

    def hooks(self) -> list[dict[str, Any]]:
        """The hook resources (``helm.sh/hook`` annotated), in order."""
        return [document for document in self.documents if is_hook(document)]

    def config(self) -> dict[str, Any]:
        """config.yaml of the processor's ConfigMap (the one mounted by the Deployment)."""
        volumes = self.pod_spec()["volumes"]
        config_map_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
        config_map = next(
            document
            for document in self.documents
            if document["kind"] == "ConfigMap" and document["metadata"]["name"] == config_map_name
        )
        loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
        return loaded

    def pod_spec(self) -> dict[str, Any]:
        """The Deployment's pod spec."""
        spec: dict[str, Any] = self.only("Deployment")["spec"]["template"]["spec"]
        return spec

    def container(self) -> dict[str, Any]:
        """The processor container."""
        (container,) = self.pod_spec()["containers"]
        return dict(container)


def is_hook(document: dict[str, Any]) -> bool:
    """True for a Helm hook resource (created around install/upgrade, not part of the release)."""
    return "helm.sh/hook" in (document["metadata"].get("annotations") or {})


def helm_template(*extra_args: str) -> subprocess.CompletedProcess[str]:
    """Runs `helm template` on the chart; the caller checks the outcome."""
    command = [
        require_tool("helm"),
        "template",
        RELEASE,
        str(CHART_DIR),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *extra_args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def render(*extra_args: str) -> Rendered:
    """Renders the chart with these extra helm arguments; fails the test on a helm error."""
    result = helm_template(*extra_args)
    assert result.returncode == 0, f"helm template {extra_args} failed:\n{result.stderr}"
    documents = tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc is not None)
    return Rendered(text=result.stdout, documents=documents)


def render_all_on(*extra_args: str) -> Rendered:
    """Renders with every optional part on (values-all-on.yaml) plus these arguments."""
    return render("--values", str(ALL_ON_VALUES), *extra_args)
