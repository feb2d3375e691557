"""The design lives in the repository: code points to docs/, and docs/ holds what it points to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    path
    for folder in ("processor", "devkit", "bench", "tests")
    for path in (REPO_ROOT / folder).rglob("*.py")
)
# Pointers to design notes that live outside this repository.
OUTSIDE_POINTERS = re.compile(
    r"DESIGN\.md|\breference/|\breference §|shared/reference|notes/issue|kafka-test-broker|§"
)
DOCS_POINTER = re.compile(r"docs/[\w.-]+\.md")
THIS_FILE = Path(__file__).resolve()


def test_the_sources_are_found() -> None:
    names = {path.relative_to(REPO_ROOT).as_posix() for path in SOURCES}
    assert {"processor/engine/offsets.py", "devkit/demo.py", "bench/latency.py"} <= names


@pytest.mark.parametrize(
    "path", [path for path in SOURCES if path != THIS_FILE], ids=lambda path: path.name
)
def test_no_pointer_leaves_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if OUTSIDE_POINTERS.search(line)
    ]
    assert found == [], "point to docs/ instead"


def pointed_to() -> list[tuple[Path, str]]:
    readme = REPO_ROOT / "README.md"
    return [
        (path, match)
        for path in [*SOURCES, readme, *sorted((REPO_ROOT / "docs").glob("*.md"))]
        for match in sorted(set(DOCS_POINTER.findall(path.read_text(encoding="utf-8"))))
    ]


def test_code_and_readme_point_to_docs() -> None:
    pointers = {target for _path, target in pointed_to()}
    expected = {
        "docs/architecture.md",
        "docs/commit-protocol.md",
        "docs/errors.md",
        "docs/trengo-api.md",
        "docs/rudderstack-compatibility.md",
    }
    assert expected <= pointers


@pytest.mark.parametrize(("path", "target"), pointed_to(), ids=str)
def test_every_docs_pointer_names_a_page_that_exists(path: Path, target: str) -> None:
    assert (REPO_ROOT / target).is_file(), f"{path.name} points to a missing {target}"


def test_every_relative_link_between_docs_pages_resolves() -> None:
    links = [
        (page, link.split("#")[0])
        for page in sorted((REPO_ROOT / "docs").glob("*.md"))
        for link in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
    ]
    assert links, "the docs pages link to each other"
    missing = [
        f"{page.name} → {link}" for page, link in links if not (page.parent / link).is_file()
    ]
    assert missing == []
