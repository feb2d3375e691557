"""Dead letters on the real broker: an original value too large to carry its error headers.

The producer's ``message.max.bytes`` (2,000 bytes here; Tansu itself enforces no limit) stands
for the broker's limit: librdkafka refuses the record the same way either way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from devkit.sandbox.broker import KafkaTarget
from processor.config import KafkaConfig
from processor.engine.dlq import DeadLetter, DeadLetterWriter, producer_config
from tests.kafka_support import TopicFactory, consume_all

pytestmark = pytest.mark.integration

MAX_MESSAGE_BYTES = 2000


def letter(value: bytes, offset: int) -> DeadLetter:
    return DeadLetter(
        key=b"user-1",
        value=value,
        headers=(("trace", b"t1"),),
        topic="events",
        partition=0,
        offset=offset,
        stage="deliver",
        reason="create_ticket: HTTP 422 Unprocessable Entity: The subject is too long.",
        status=422,
        attempts=1,
        first_attempt_at=datetime.now(UTC),
    )


async def write_letters(writer: DeadLetterWriter, letters: list[DeadLetter]) -> None:
    serving = asyncio.create_task(writer.serve(interval_seconds=0.005))
    try:
        async with asyncio.timeout(20):
            await asyncio.gather(*(writer.send(each) for each in letters))
    finally:
        serving.cancel()


def test_a_dead_letter_near_the_size_limit_is_written_truncated_with_its_size(
    kafka: KafkaTarget, kafka_topic_factory: TopicFactory
) -> None:
    topic = kafka_topic_factory(1)
    kafka_config = KafkaConfig(
        bootstrap_servers=kafka.bootstrap_servers,
        dead_letter_topic=topic,
        settings={"message.max.bytes": MAX_MESSAGE_BYTES},
    )
    writer = DeadLetterWriter(Producer(producer_config(kafka_config)), topic)
    near_the_limit = b'{"properties": "' + b"x" * 1930 + b'"}'  # fits alone, not with headers
    small = b'{"type": "identify"}'

    asyncio.run(write_letters(writer, [letter(near_the_limit, 7), letter(small, 8)]))

    big_record, small_record = consume_all(kafka.bootstrap_servers, topic, min_records=2)
    headers = dict(big_record.headers)
    assert headers["x-truncated"] == b"true"
    assert headers["x-original-size"] == str(len(near_the_limit)).encode()
    assert headers["x-original-offset"] == b"7" and headers["trace"] == b"t1"
    assert big_record.value and near_the_limit.startswith(big_record.value)
    assert len(big_record.value) < len(near_the_limit)
    assert small_record.value == small
    assert "x-truncated" not in dict(small_record.headers)
