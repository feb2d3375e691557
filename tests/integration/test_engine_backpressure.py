"""Backpressure: a 200k-event backlog against a slow Trengo keeps memory and buffers bounded.

The sandbox answers every call after 500 ms, so the processor drains a few dozen events a
second while 200 000 wait in Kafka. Its buffered events (``inflight_events``) must stay below
``max_buffered_events`` plus one poll batch and its RSS must level off. The backlog is not
drained within the test: what is committed when it stops must all have been delivered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from confluent_kafka import KafkaError, Message, Producer

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from tests.kafka_support import OutgoingRecord, TopicFactory, committed_offsets, consume_all
from tests.processor_support import (
    UNLIMITED_RATE,
    ProcessorProcess,
    contact_emails,
    email_of,
    identify_record,
    order_record,
    order_subject,
    processor_config,
    ticket_subjects,
    wait_until,
)

pytestmark = pytest.mark.integration

BACKLOG = 200_000
PARTITIONS = 4
USERS = 100  # a multiple of PARTITIONS: each user's events stay on one partition
BATCH_SIZE = 500  # processor.engine.consumer.BATCH_SIZE
SAMPLE_SECONDS = 20.0
WARM_UP_SECONDS = 5.0
RSS_GROWTH_ALLOWANCE = 40 * 2**20  # after warm-up: refills reuse bounded fetch buffers


def backlog_event(index: int) -> OutgoingRecord:
    """Event ``index``: the first USERS are identifies, the rest orders ``o<index>``."""
    user = f"user{index % USERS}"
    return identify_record(user) if index < USERS else order_record(user, f"o{index}")


def produce_backlog(bootstrap_servers: str, topic: str) -> None:
    """Event i goes to partition i % PARTITIONS, so its offset is i // PARTITIONS."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "queue.buffering.max.messages": BACKLOG,
        }
    )
    failures: list[KafkaError] = []

    def report(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    for index in range(BACKLOG):
        key, value, _headers = backlog_event(index)
        producer.produce(topic, value, key, partition=index % PARTITIONS, on_delivery=report)
    assert producer.flush(60) == 0
    assert failures == []


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    return SandboxOptions(requests_per_minute=None, latency_ms=500)


def test_a_200k_backlog_with_a_slow_trengo_keeps_buffers_and_memory_bounded(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(PARTITIONS), kafka_topic_factory(1)
    produce_backlog(kafka.bootstrap_servers, topic)
    max_buffered = 2000
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 32, "max_buffered_events": max_buffered},
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_until(lambda: processor.messages("assigned"), 30, "the partitions")
        samples = _sample(processor, SAMPLE_SECONDS)
        assert processor.stop() == 0, processor.log()

    rss_after_warm_up = [sample.rss for sample in samples if sample.at >= WARM_UP_SECONDS]
    inflight = [sample.inflight for sample in samples]
    print(
        f"backlog: RSS {min(rss_after_warm_up) / 2**20:.0f}-{max(rss_after_warm_up) / 2**20:.0f}"
        f" MiB after warm-up (peak {max(sample.rss for sample in samples) / 2**20:.0f} MiB), "
        f"inflight max {max(inflight):.0f}, {sum(ticket_subjects(sandbox).values())} delivered"
    )
    assert max(inflight) <= max_buffered + BATCH_SIZE
    assert max(inflight) >= max_buffered  # the buffer did fill: the bound was tested
    assert max(sample.paused for sample in samples) == PARTITIONS
    assert max(rss_after_warm_up) - rss_after_warm_up[0] <= RSS_GROWTH_ALLOWANCE
    _assert_committed_events_delivered(kafka, sandbox, group_id, topic)
    assert consume_all(kafka.bootstrap_servers, dead_letter_topic) == []


@dataclass(frozen=True)
class Sample:
    """The processor at one moment."""

    at: float  # seconds since sampling began
    rss: int  # bytes
    inflight: float  # trengo_processor_inflight_events
    paused: float  # trengo_processor_partitions_paused


def _sample(processor: ProcessorProcess, seconds: float) -> list[Sample]:
    """Samples twice a second for ``seconds``."""
    process = psutil.Process(processor.process.pid)
    started = time.monotonic()
    samples = []
    while (elapsed := time.monotonic() - started) < seconds:
        inflight = processor.metric("trengo_processor_inflight_events")
        paused = processor.metric("trengo_processor_partitions_paused")
        samples.append(Sample(elapsed, process.memory_info().rss, inflight, paused))
        time.sleep(0.5)
    return samples


def _assert_committed_events_delivered(
    kafka: KafkaTarget, sandbox: RunningSandbox, group_id: str, topic: str
) -> None:
    """Nothing below a committed offset may be missing from the sandbox: none lost."""
    committed = committed_offsets(kafka.bootstrap_servers, group_id, topic)
    tickets, emails = ticket_subjects(sandbox), contact_emails(sandbox)
    assert set(committed) == set(range(PARTITIONS))
    for partition, position in committed.items():
        for offset in range(position):
            index = offset * PARTITIONS + partition
            delivered = (
                email_of(f"user{index}") in emails
                if index < USERS
                else tickets[order_subject(f"o{index}")] > 0
            )
            assert delivered, f"event {index} (partition {partition} offset {offset}) lost"
