"""`make audit` (scripts/audit.py) with a stand-in pip-audit: it never claims an audit it did
not do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AUDIT_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit.py"
SKIPPED = {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI: aiohttp (3.14.5)"}
CLEAN = {"name": "jinja2", "version": "3.1.6", "vulns": []}
VULNERABLE = {"name": "jinja2", "version": "3.1.4", "vulns": [{"id": "GHSA-cpwx-vrp4-4pq7"}]}


def run_audit(tmp_path: Path, stdout: str, stderr: str = "", code: int = 0) -> tuple[int, str]:
    stand_in = tmp_path / "pip-audit"
    stand_in.write_text(
        "#!/bin/sh\n"
        f"cat <<'REPORT'\n{stdout}\nREPORT\n"
        f"echo {json.dumps(stderr)} >&2\n"
        f"exit {code}\n",
        encoding="utf-8",
    )
    stand_in.chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(AUDIT_SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_AUDIT": str(stand_in)},
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout


def report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


@pytest.mark.parametrize(
    ("stdout", "stderr", "code", "status", "says"),
    [
        (report(CLEAN, CLEAN), "", 0, 0, "no known vulnerabilities in 2 packages"),
        (report(VULNERABLE, CLEAN), "", 1, 1, "jinja2 3.1.4: GHSA-cpwx-vrp4-4pq7"),
        # pip-audit's own text here would be "No known vulnerabilities found".
        (report(SKIPPED, SKIPPED), "", 0, 2, "2 of 2 packages could not be audited"),
        (report(SKIPPED, VULNERABLE), "", 1, 1, "1 of 2 packages could not be audited"),
        ("", "ConnectionError: cannot reach pypi.org", 1, 2, "cannot reach pypi.org"),
        ("not json", "", 0, 2, "nothing was checked"),
        ('{"dependencies": 3}', "", 0, 2, "nothing was checked"),
    ],
    ids=["clean", "vulnerable", "offline", "partial", "network-error", "garbage", "bad-shape"],
)
def test_the_verdict_says_what_was_checked(
    tmp_path: Path, stdout: str, stderr: str, code: int, status: int, says: str
) -> None:
    returned, output = run_audit(tmp_path, stdout, stderr, code)
    assert returned == status
    assert says in output
    if status != 0:
        assert "no known vulnerabilities" not in output.lower()


def test_a_missing_pip_audit_is_reported(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(AUDIT_SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_AUDIT": str(tmp_path / "absent")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot run pip-audit" in result.stdout
