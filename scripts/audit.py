"""`make audit`: pip-audit over the virtualenv, honest about what it could not check.

pip-audit prints "No known vulnerabilities found" even when it audited nothing (no route to
the vulnerability database: every package skipped). This wrapper reads its JSON report and
says which it was. Exit 0: every package audited, none vulnerable; 1: vulnerabilities;
2: the audit could not run or skipped packages (so nothing is claimed about them).

PIP_AUDIT names the pip-audit executable (default: the one next to this Python).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLEAN, VULNERABLE, UNKNOWN = 0, 1, 2


def main() -> int:
    """Run pip-audit, print the verdict, return the exit status."""
    executable = os.environ.get("PIP_AUDIT") or str(Path(sys.executable).parent / "pip-audit")
    command = [executable, "--local", "--format", "json", "--progress-spinner", "off"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        print(f"audit: cannot run pip-audit ({error.strerror}); `make venv` installs it")
        return UNKNOWN
    status, message = verdict(result.stdout, result.stderr)
    print(message)
    return status


def verdict(report_text: str, error_text: str) -> tuple[int, str]:
    """(exit status, message) for pip-audit's JSON report and its stderr."""
    try:
        dependencies = json.loads(report_text)["dependencies"]
    except (ValueError, KeyError, TypeError):
        dependencies = None
    if not isinstance(dependencies, list) or not all(isinstance(d, dict) for d in dependencies):
        last_error = (error_text.strip().splitlines() or ["no report"])[-1]
        return UNKNOWN, f"audit: pip-audit failed, nothing was checked ({last_error})"
    skipped = [item for item in dependencies if item.get("skip_reason")]
    vulnerable = [item for item in dependencies if item.get("vulns")]
    lines = [
        f"{item['name']} {item.get('version', '')}: "
        + ", ".join(vuln.get("id", "?") for vuln in item["vulns"])
        for item in vulnerable
    ]
    audited = len(dependencies) - len(skipped)
    if skipped:
        lines.append(
            f"audit: {len(skipped)} of {len(dependencies)} packages could not be audited (is the "
            f"vulnerability database reachable?), e.g. {skipped[0]['skip_reason']}"
        )
    if vulnerable:
        return VULNERABLE, "\n".join([*lines, f"audit: {len(vulnerable)} vulnerable packages"])
    if skipped:
        return UNKNOWN, "\n".join(lines)
    return CLEAN, f"audit: no known vulnerabilities in {audited} packages"


if __name__ == "__main__":
    sys.exit(main())
