"""Rebalancing under load: a second processor joins, the first leaves; nothing is lost.

A watcher reads the group's committed offsets throughout. A commit by a process for a
partition it no longer owns would move an offset back below what the new owner committed, so
committed offsets must only ever grow.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from tests.kafka_support import (
    TopicFactory,
    committed_offsets,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
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

BATCH_SIZE = 500  # processor.engine.consumer.BATCH_SIZE


class CommitWatcher:
    """Reads committed offsets every few hundred ms and notes any that went backwards."""

    def __init__(self, bootstrap_servers: str, group_id: str, topic: str) -> None:
        self._read = lambda: committed_offsets(bootstrap_servers, group_id, topic)
        self.highest: dict[int, int] = {}
        self.went_back: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CommitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._check()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            self._check()

    def _check(self) -> None:
        for partition, offset in self._read().items():
            if offset < self.highest.get(partition, -1):
                self.went_back.append(f"p{partition}: {self.highest[partition]} → {offset}")
            self.highest[partition] = max(offset, self.highest.get(partition, -1))


class InflightWatcher:
    """Samples a processor's buffered-events gauge until stopped; keeps the largest value."""

    def __init__(self, processor: ProcessorProcess) -> None:
        self._processor = processor
        self.most = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> InflightWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.wait(0.2) and self._processor.process.poll() is None:
            try:
                value = self._processor.metric("trengo_processor_inflight_events")
            except OSError:  # the processor is stopping
                return
            self.most = max(self.most, value)


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    return SandboxOptions(requests_per_minute=None, latency_ms=50)


def test_a_processor_joining_and_one_leaving_under_load_lose_nothing(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(4), kafka_topic_factory(1)
    users = [f"user{number}" for number in range(40)]
    events = [identify_record(user) for user in users] + [
        order_record(user, f"{user}-{number}") for number in range(50) for user in users
    ]
    produced = produce(kafka.bootstrap_servers, topic, events)
    max_buffered = 100
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 4, "max_buffered_events": max_buffered},
    )
    first = ProcessorProcess(config, tmp_path, "first")
    second = ProcessorProcess(config, tmp_path, "second")

    with CommitWatcher(kafka.bootstrap_servers, group_id, topic) as watcher, first:
        wait_until(lambda: first.messages("assigned"), 30, "the first processor to start")
        with (
            second,
            InflightWatcher(first) as first_inflight,
            InflightWatcher(second) as second_inflight,
        ):
            wait_until(lambda: second.messages("assigned"), 40, "the second to get partitions")
            wait_until(
                lambda: second.metric("trengo_processor_events_total", outcome="delivered") > 0,
                30,
                "the second processor to deliver",
            )
            assert first.messages("revoked")
            assert first.stop() == 0, first.log()
            wait_for_committed_offsets(
                kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=90
            )
            assert second.stop() == 0, second.log()

    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic)
    ledger = account(produced, sandbox, dead_letters)
    print(
        f"rebalance: duplicates {ledger.duplicates}; most buffered events: first "
        f"{first_inflight.most:.0f}, second {second_inflight.most:.0f}"
    )
    assert ledger.lost == []
    assert dead_letters == []
    assert watcher.went_back == []
    assert watcher.highest == end_offsets(produced)
    assert max(first_inflight.most, second_inflight.most) <= max_buffered + BATCH_SIZE
