"""Renders of the chart shared by the tests: `helm template` runs once per variant per session."""

from __future__ import annotations

import pytest

from tests.helm.support import Rendered, render, render_all_on


@pytest.fixture(scope="session")
def rendered_default() -> Rendered:
    """The chart with its default values."""
    return render()


@pytest.fixture(scope="session")
def rendered_all_on() -> Rendered:
    """The chart with every optional part on (tests/helm/values-all-on.yaml)."""
    return render_all_on()
