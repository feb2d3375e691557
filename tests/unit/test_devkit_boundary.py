"""The product package holds the product: ``run`` never imports the devkit, which ships apart.

The devkit (the Trengo sandbox with its unauthenticated ``/__admin`` endpoints, the embedded
broker launcher, the demo) is its own distribution; the ``demo`` and ``sandbox`` commands import
it on demand and say how to install it where it is missing.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from processor.cli import DevkitMissingError, _devkit, main

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_MODULES = ("devkit", "processor.sandbox", "processor.demo", "processor.progress")

# Walks the `run` path as far as it goes without a broker: the command line, the runner it
# starts, the parsed command and a config error on loading.
RUN_PATH_IMPORTS = """
import contextlib, io, sys
import processor.cli, processor.runner
with contextlib.redirect_stderr(io.StringIO()):
    status = processor.cli.main(["run", "--config", "/nonexistent/config.yaml"])
assert status == 2, status
print("\\n".join(sorted(sys.modules)))
"""


def test_the_run_path_imports_no_development_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_PATH_IMPORTS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = result.stdout.split()
    assert "processor.runner" in imported  # the probe really walked the run path
    development = [
        name
        for name in imported
        if any(name == prefix or name.startswith(f"{prefix}.") for prefix in DEVELOPMENT_MODULES)
    ]
    assert development == []


def hide_the_devkit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every devkit import fail as it does where the devkit is not installed."""
    for name in [name for name in sys.modules if name.startswith("devkit.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "devkit", None)
    for name in ("devkit.demo", "devkit.sandbox", "devkit.sandbox.trengo"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    "argv", [["demo"], ["demo", "--events", "5"], ["sandbox"], ["sandbox", "--port", "18999"]]
)
def test_without_the_devkit_demo_and_sandbox_exit_2_with_one_line(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide_the_devkit(monkeypatch)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"trengo-processor {argv[0]} needs the devkit" in error
    assert "pip install -e ./devkit" in error


def test_a_missing_dependency_inside_the_devkit_is_not_reported_as_a_missing_devkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "brokenkit.py").write_text("import dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as raised:
        _devkit("brokenkit", "demo")
    assert raised.value.name == "dependency_nobody_installed"
    assert not isinstance(raised.value, DevkitMissingError)


def test_the_sandbox_parses_its_own_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--port", "not-a-port"])
    assert exited.value.code == 2
    assert "trengo-processor sandbox: error: argument --port" in capsys.readouterr().err


def test_an_out_of_range_sandbox_flag_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--error-rate", "1.5"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "trengo-processor sandbox: error:" in error
    assert "Traceback" not in error


def test_the_sandbox_help_lists_the_sandbox_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--help"])
    assert exited.value.code == 0
    assert "--error-rate" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["run", "--port", "1"], ["check-config", "--bogus"]])
def test_other_commands_still_refuse_unknown_flags(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_processor_distribution_packages_no_devkit() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert any(fnmatch("processor.engine", pattern) for pattern in patterns)
    for package in ("devkit", "devkit.sandbox"):
        assert not any(fnmatch(package, pattern) for pattern in patterns), package


def test_the_devkit_is_its_own_distribution_holding_the_devkit_only() -> None:
    project = tomllib.loads((REPO_ROOT / "devkit" / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] != "trengo-processor"
    packages = project["tool"]["setuptools"]["packages"]
    assert packages and all(package.split(".")[0] == "devkit" for package in packages)
    assert not (REPO_ROOT / "processor" / "sandbox").exists()
