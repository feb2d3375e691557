"""Fixtures of the integration tests: the Trengo sandbox each test talks to, and its stack.

A test module that needs other sandbox settings overrides ``sandbox_options``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from tests.kafka_support import TopicFactory
from tests.processor_support import ProcessorStack, StackFactory


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    """No rate limit, no latency, no faults: the processor's own limiter is the only brake."""
    return SandboxOptions(requests_per_minute=None)


@pytest.fixture
def sandbox(sandbox_options: SandboxOptions) -> Iterator[RunningSandbox]:
    """A sandbox on a free loopback port for one test."""
    with RunningSandbox(sandbox_options) as running:
        yield running


@pytest.fixture
def make_stack(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> StackFactory:
    """``make_stack(partitions)``: a fresh input topic with that many partitions, a one-partition
    dead-letter topic, this test's group id and the ``sandbox`` fixture (or the one given)."""

    def make(partitions: int = 1, sandbox: RunningSandbox | None = None) -> ProcessorStack:
        topic, dead_letter_topic = kafka_topic_factory(partitions), kafka_topic_factory(1)
        running = sandbox if sandbox is not None else request.getfixturevalue("sandbox")
        return ProcessorStack(kafka, running, topic, dead_letter_topic, group_id, tmp_path)

    return make
