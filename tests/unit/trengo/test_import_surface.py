"""``processor.trengo``'s ``__all__`` is its real import surface: code outside the package
(the rest of processor/, devkit/, bench/) imports only those names from ``processor.trengo``,
and every one of them is used there."""

from __future__ import annotations

from pathlib import Path

import pytest

import processor.trengo
from tests.unit.imports import imported_modules

ROOT = Path(processor.__file__).parent.parent
TRENGO = Path(processor.trengo.__file__).parent
SURFACE = {f"processor.trengo.{name}" for name in processor.trengo.__all__}
OUTSIDE = sorted(
    path
    for folder in ("processor", "devkit", "bench")
    for path in (ROOT / folder).rglob("*.py")
    if TRENGO not in path.parents and ".venv" not in path.parts
)


def trengo_imports(path: Path) -> set[str]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return {
        module
        for module in imported_modules(path.read_text(), package)
        if module.startswith("processor.trengo.")
    }


def behind_the_surface(module: str) -> bool:
    return module not in SURFACE and not any(module.startswith(f"{name}.") for name in SURFACE)


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda path: str(path.relative_to(ROOT)))
def test_code_outside_the_package_imports_only_the_surface(path: Path) -> None:
    assert sorted(filter(behind_the_surface, trengo_imports(path))) == []


def test_every_name_of_the_surface_is_used_outside_the_package() -> None:
    used = set().union(*(trengo_imports(path) for path in OUTSIDE))
    assert sorted(SURFACE - used) == []


@pytest.mark.parametrize(
    ("source", "behind"),
    [
        pytest.param("from processor.trengo import TrengoClient", False, id="surface"),
        pytest.param("from processor.trengo.client import TrengoClient", True, id="submodule"),
        pytest.param("import processor.trengo.delivery", True, id="import"),
        pytest.param("from processor.trengo import endpoints", False, id="surface-module"),
    ],
)
def test_the_check_tells_the_surface_from_what_is_behind_it(source: str, behind: bool) -> None:
    modules = {
        m for m in imported_modules(source, "processor") if m.startswith("processor.trengo.")
    }
    assert any(behind_the_surface(module) for module in modules) == behind
