"""The engine depends on no product: nothing in processor/engine/ imports processor.trengo, and
of the pipeline only its data model (``processor.pipeline.plan``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import processor.engine
from tests.unit.imports import imported_modules

ENGINE = Path(processor.engine.__file__).parent
ALLOWED_FROM_PIPELINE = {"processor.pipeline.plan"}


def forbidden(module: str) -> bool:
    if module == "processor.trengo" or module.startswith("processor.trengo."):
        return True
    in_pipeline = module.startswith("processor.pipeline.")
    return in_pipeline and not any(
        module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED_FROM_PIPELINE
    )


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda path: path.name)
def test_an_engine_module_imports_neither_trengo_nor_pipeline_internals(path: Path) -> None:
    imports = imported_modules(path.read_text(), "processor.engine")
    assert sorted(module for module in imports if forbidden(module)) == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        pytest.param("from processor.trengo.errors import X", True, id="from-module"),
        pytest.param("import processor.trengo.client", True, id="import"),
        pytest.param("from processor import trengo", True, id="from-package"),
        pytest.param("from ..trengo import errors", True, id="relative"),
        pytest.param("def f():\n    from processor.trengo import x", True, id="nested"),
        pytest.param("from processor.pipeline.map import plan_event", True, id="pipeline-map"),
        pytest.param("from processor.pipeline.plan import Plan", False, id="pipeline-plan"),
        pytest.param("from processor.engine.outcomes import X", False, id="engine"),
        pytest.param("import processor.trengo_like", False, id="prefix-only"),
    ],
)
def test_the_check_sees_every_way_of_importing(source: str, found: bool) -> None:
    assert any(forbidden(m) for m in imported_modules(source, "processor.engine")) == found
