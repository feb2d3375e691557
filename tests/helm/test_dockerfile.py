"""The container image: hadolint-clean, multi-stage, slim, non-root, the chart's entrypoint.

There is no Docker daemon here, so the image is checked from its Dockerfile: hadolint for the
best-practice rules, and a small parser for the rules of this project.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass

from processor.config import ServerConfig
from tests.helm.support import REPO_ROOT, Rendered, require_tool

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BUILD_TOOLING = ("apt-get", "apk ", "gcc", "build-essential", "pip install", "make ")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions, in order, without comments."""
    instructions = []
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions grouped by build stage, each stage starting with its FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def final_stage() -> list[Instruction]:
    """The stage that becomes the image."""
    return stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[-1]


def arguments_of(stage: list[Instruction], keyword: str) -> list[str]:
    """The arguments of every instruction of this keyword in the stage."""
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [require_tool("hadolint"), "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], result.stderr
    assert result.returncode == 0


def test_multi_stage_on_a_slim_base_with_no_build_tools_in_the_image() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    build_args = dict(
        argument.split("=", 1)
        for argument in arguments_of(instructions[:1], "ARG")
        if "=" in argument
    )
    all_stages = stages(instructions)
    assert len(all_stages) >= 2
    bases = [stage[0].arguments.split()[0] for stage in all_stages]
    resolved_bases = [build_args.get(base.strip("${}"), base) for base in bases]
    assert all("slim" in base for base in resolved_bases), resolved_bases
    image = all_stages[-1]
    assert any(copy.startswith("--from=") for copy in arguments_of(image, "COPY"))
    final_runs = " ".join(arguments_of(image, "RUN"))
    assert not [tool for tool in BUILD_TOOLING if tool in final_runs]


def test_image_runs_as_the_charts_non_root_user(rendered_default: Rendered) -> None:
    users = arguments_of(final_stage(), "USER")
    assert users, "the image must set USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0
    assert gid.isdigit() and int(gid) > 0
    pod_security = rendered_default.pod_spec()["securityContext"]
    assert (int(uid), int(gid)) == (pod_security["runAsUser"], pod_security["runAsGroup"])


def test_entrypoint_runs_the_mounted_config_as_the_chart_does(rendered_default: Rendered) -> None:
    (entrypoint,) = arguments_of(final_stage(), "ENTRYPOINT")
    command = json.loads(entrypoint)  # exec form: SIGTERM reaches the processor, not a shell
    assert command == ["trengo-processor", "run", "--config", "/etc/trengo-processor/config.yaml"]
    assert rendered_default.container()["command"] == command
    config_mount = next(
        mount for mount in rendered_default.container()["volumeMounts"] if mount["name"] == "config"
    )
    assert command[-1] == f"{config_mount['mountPath']}/config.yaml"


def test_no_healthcheck_and_the_metrics_port_is_exposed() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    assert "HEALTHCHECK" not in {instruction.keyword for instruction in instructions}
    assert arguments_of(final_stage(), "EXPOSE") == [str(ServerConfig().port)]


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    admitted = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    build_stage = stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[0]
    copied = {
        source.rstrip("/")
        for copy in arguments_of(build_stage, "COPY")
        for source in shlex.split(copy)[:-1]
        if not source.startswith("--")
    }
    assert copied == admitted


def test_the_image_holds_no_devkit() -> None:
    build_stage = stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[0]
    copied = [
        source
        for copy in arguments_of(build_stage, "COPY")
        for source in shlex.split(copy)[:-1]
        if not source.startswith("--")
    ]
    assert "processor" in copied
    assert not [source for source in copied if source.startswith(("devkit", ".", "*"))]
    installs = " ".join(arguments_of(build_stage, "RUN"))
    assert "devkit" not in installs
    assert "[" not in installs  # no extras: only the package's own dependencies


def base_image() -> str:
    """The image every stage starts from, as the first ARG sets it."""
    instructions = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    (default,) = [arg for arg in arguments_of(instructions[:1], "ARG") if "=" in arg]
    return default.split("=", 1)[1]


def test_the_base_image_is_pinned_by_digest() -> None:
    image, _, digest = base_image().partition("@")
    assert image.startswith("python:3.11")
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert all(char in "0123456789abcdef" for char in digest.removeprefix("sha256:"))
    every_from = [
        stage[0].arguments.split()[0]
        for stage in stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))
    ]
    assert set(every_from) == {"${PYTHON_IMAGE}"}  # no stage escapes the pin


def test_the_image_ships_no_installer() -> None:
    build, image = stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[:2]
    venv_runs = [run for run in arguments_of(build, "RUN") if " venv " in f" {run} "]
    assert venv_runs and all("--without-pip" in run for run in venv_runs)
    uninstalled = " ".join(arguments_of(image, "RUN"))
    assert "pip uninstall --yes" in uninstalled
    assert all(package in uninstalled.split() for package in ("pip", "setuptools"))
