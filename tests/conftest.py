"""Shared pytest fixtures: one Kafka for the whole session, unique topics and group ids per test.

Kafka comes from ``kafka_target()``: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else testcontainers if
Docker answers, else the embedded Tansu broker. It starts only when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.sandbox.broker import KafkaTarget, create_topics, kafka_target
from tests.kafka_support import TopicFactory, delete_topics, unique_name


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaTarget]:
    """The session's Kafka, with the client settings that suit it."""
    with kafka_target() as target:
        yield target


@pytest.fixture
def kafka_topic_factory(
    kafka: KafkaTarget, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Creates topics with unique names (``factory(partitions)``); deletes them after the test."""
    created_topics: list[str] = []

    def create_topic(partitions: int = 1) -> str:
        name = unique_name(request.node.name, "topic")
        create_topics(kafka.bootstrap_servers, [name], partitions)
        created_topics.append(name)
        return name

    yield create_topic
    if created_topics:
        delete_topics(kafka.bootstrap_servers, created_topics)


@pytest.fixture
def group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group id no other test uses."""
    return unique_name(request.node.name, "group")
