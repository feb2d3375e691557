"""Fixtures of the integration tests: the Trengo sandbox each test talks to.

A test module that needs other sandbox settings overrides ``sandbox_options``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.sandbox.trengo import RunningSandbox, SandboxOptions


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    """No rate limit, no latency, no faults: the processor's own limiter is the only brake."""
    return SandboxOptions(requests_per_minute=None)


@pytest.fixture
def sandbox(sandbox_options: SandboxOptions) -> Iterator[RunningSandbox]:
    """A sandbox on a free loopback port for one test."""
    with RunningSandbox(sandbox_options) as running:
        yield running
