"""Secure by default, against the real broker and the sandbox: a flood of idle connections does
not starve the processor, and a bad deploy halts instead of dead-lettering the stream."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox
from tests.kafka_support import TopicFactory, consume_all, produce, wait_for_committed_offsets
from tests.processor_support import (
    UNLIMITED_RATE,
    ProcessorProcess,
    account,
    end_offsets,
    identify_record,
    order_record,
    processor_config,
    wait_until,
)

pytestmark = pytest.mark.integration

# The report: 247 half-sent requests exhausted a 256-descriptor limit.
FD_LIMIT = 256
FLOOD = 400
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: scraper\r\nX-Slow: "


@contextmanager
def connection_flood(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` loopback connections, every other one with half a request, held open."""
    with ExitStack() as stack:
        held = []
        for number in range(count):
            connection = stack.enter_context(socket.create_connection(("127.0.0.1", port), 5))
            if number % 2:
                connection.sendall(HALF_REQUEST)
            held.append(connection)
        yield held


def test_a_connection_flood_neither_starves_probes_nor_kafka(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
    )
    processor = ProcessorProcess(config, tmp_path).start(max_open_files=FD_LIMIT)
    try:
        wait_until(lambda: processor.readyz()[0] == 200, 60, "the processor to be ready")
        with connection_flood(processor.health_port(), FLOOD):
            open_files = psutil.Process(processor.process.pid).num_fds()
            print(f"descriptors right after {FLOOD} connections: {open_files}")
            assert processor.http_get("/healthz")[0] == 200
            users = [f"flood-user{number}" for number in range(20)]
            produced = produce(
                kafka.bootstrap_servers,
                topic,
                [identify_record(user) for user in users]
                + [order_record(user, f"{user}-1") for user in users],
            )
            wait_for_committed_offsets(
                kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
            )
            assert processor.readyz()[0] == 200
        assert processor.stop() == 0, processor.log()
    finally:
        processor.kill()
    # Baseline + MAX_CONNECTIONS + two accept batches at worst: room is left for Kafka and Trengo.
    assert open_files < FD_LIMIT - 64
    assert "Too many open files" not in processor.log()
    assert "out of system resource" not in processor.log()  # asyncio's failed accept
    ledger = account(produced, sandbox, consume_all(kafka.bootstrap_servers, dead_letter_topic))
    assert ledger.lost == [] and ledger.duplicates == 0


def test_a_wrong_channel_halts_after_the_window_with_bounded_dead_letters(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    window, in_flight, events = 20, 4, 120
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        destination={"channelId": "999999"},  # no such channel: every contact call is refused
        delivery={"dead_letter_window": window, "max_in_flight": in_flight},
    )
    produce(
        kafka.bootstrap_servers,
        topic,
        [identify_record(f"wrong-user{number}") for number in range(events)],
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_until(
            lambda: processor.metric("trengo_processor_dead_letter_halt") == 1,
            60,
            "the dead-letter halt",
        )
        halted_at = processor.metric("trengo_processor_dead_letters_total", stage="deliver")
        status, body = processor.readyz()
        assert status == 503 and "destination halted" in body["reasons"]
        assert processor.metric("trengo_processor_destination_up") == 0
        assert processor.metric("trengo_processor_dead_letter_ratio") == 1.0
        # No probe reopens it: the token works, the config does not.
        wait_until(
            lambda: processor.metric("trengo_processor_partitions_paused") == 2, 30, "pausing"
        )
        (line,) = processor.messages("destination halted until restart")
        after_a_while = processor.metric("trengo_processor_dead_letters_total", stage="deliver")
        assert processor.stop() == 0, processor.log()

    assert "100% of the last 20 deliveries" in line
    assert "max_dead_letter_ratio 0.5" in line and "Channel" in line
    assert window <= halted_at <= after_a_while <= window + in_flight
    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic)
    assert window <= len(dead_letters) <= window + in_flight < events
