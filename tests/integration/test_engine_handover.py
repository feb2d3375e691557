"""Handing partitions over without duplicate tickets: deploys, rebalances, crashes, a stuck key.

Every event is an identify (one contact per user) or an order (one ticket per order id), so the
sandbox shows which events were delivered and how often. Before letting go of a partition the
engine fills the gaps below its highest started offset, so with Trengo healthy a deploy or a
rebalance redelivers nothing that was delivered. Where the broker keeps offset-commit metadata
the done offsets above the commit point survive too (the embedded Tansu broker drops it).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from processor.engine import offsetmap
from tests.kafka_support import Record, TopicFactory, produce
from tests.processor_support import (
    UNLIMITED_RATE,
    ProcessorStack,
    StackFactory,
    account,
    backlog,
    ticket_subjects,
    wait_until,
)

pytestmark = pytest.mark.integration

SUBJECT = re.compile(r"Order (\w+)-(\d+) completed")


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    return SandboxOptions(requests_per_minute=None, latency_ms=50)


def tickets_at_least(sandbox: RunningSandbox, count: int) -> Callable[[], bool]:
    return lambda: sum(ticket_subjects(sandbox).values()) >= count


def assert_delivered_in_order_without_loss(stack: ProcessorStack, produced: list[Record]) -> int:
    """Nothing lost or dead-lettered, each user's orders first opened in order; duplicates."""
    dead_letters = stack.dead_letters()
    ledger = account(produced, stack.sandbox, dead_letters)
    assert ledger.lost == []
    assert dead_letters == []
    first_opened: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for request in stack.sandbox.requests():
        body = request.json_body if isinstance(request.json_body, dict) else {}
        matched = SUBJECT.fullmatch(str(body.get("subject", "")))
        if request.status == 201 and matched and matched.group(0) not in seen:
            seen.add(matched.group(0))
            first_opened[matched.group(1)].append(int(matched.group(2)))
    for user, numbers in first_opened.items():
        assert numbers == sorted(numbers), f"{user} out of order: {numbers}"
    return ledger.duplicates


def test_a_rolling_restart_with_trengo_healthy_redelivers_nothing(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(3)
    users = [f"user{number}" for number in range(30)]
    produced = stack.produce(backlog(users, orders_per_user=40))
    config = stack.config(
        trengo=UNLIMITED_RATE, delivery={"max_in_flight": 32, "max_buffered_events": 400}
    )
    processor = stack.processor(config)

    with processor:
        wait_until(tickets_at_least(stack.sandbox, 300), 60, "300 tickets before the deploy")
        assert processor.stop() == 0, processor.log()
    with processor:
        stack.wait_until_committed(produced, timeout=90)
        assert processor.stop() == 0, processor.log()

    duplicates = assert_delivered_in_order_without_loss(stack, produced)
    print(f"rolling restart: duplicates {duplicates}")
    assert duplicates == 0


def test_join_leave_join_under_load_redelivers_almost_nothing(make_stack: StackFactory) -> None:
    stack = make_stack(6)
    sandbox = stack.sandbox
    users = [f"user{number}" for number in range(60)]
    produced = stack.produce(backlog(users, orders_per_user=49))
    orders = len(produced) - len(users)  # 3,000 events, 2,940 of them tickets
    config = stack.config(
        trengo=UNLIMITED_RATE, delivery={"max_in_flight": 8, "max_buffered_events": 300}
    )
    first, second, third = (stack.processor(config, name) for name in "ABC")

    with first:
        wait_until(tickets_at_least(sandbox, orders // 5), 60, "20 % of the tickets")
        with second:
            wait_until(tickets_at_least(sandbox, orders // 2), 90, "50 % of the tickets")
            assert first.stop() == 0, first.log()
            wait_until(tickets_at_least(sandbox, orders * 7 // 10), 90, "70 % of the tickets")
            with third:
                stack.wait_until_committed(produced, timeout=120)
                assert second.stop() == 0, second.log()
                assert third.stop() == 0, third.log()

    duplicates = assert_delivered_in_order_without_loss(stack, produced)
    print(f"join/leave/join rebalance: duplicates {duplicates} of {orders} tickets")
    assert duplicates <= 10


def test_a_key_failing_all_run_long_then_a_graceful_restart(make_stack: StackFactory) -> None:
    stack = make_stack(1)
    sandbox = stack.sandbox
    users = ["stuck"] + [f"user{number}" for number in range(15)]
    produced = stack.produce(backlog(users, orders_per_user=20))
    flowing = (len(users) - 1) * 20
    sandbox.set_faults(unavailable_for=("stuck",))
    config = stack.config(
        trengo=UNLIMITED_RATE, delivery={"max_in_flight": 16, "shutdown_timeout_seconds": 2}
    )
    processor = stack.processor(config)

    with processor:
        wait_until(tickets_at_least(sandbox, flowing), 90, "the other keys' tickets")
        assert processor.stop() == 0, processor.log()
    kept_metadata = (
        committed_metadata(stack.kafka.bootstrap_servers, stack.group_id, stack.topic) is not None
    )
    sandbox.set_faults(unavailable_for=())
    with processor:
        stack.wait_until_committed(produced, timeout=90)
        assert processor.stop() == 0, processor.log()

    duplicates = assert_delivered_in_order_without_loss(stack, produced)
    print(
        f"one key failing, graceful restart: duplicates {duplicates} of {flowing} tickets "
        f"done behind it (commit metadata kept by the broker: {kept_metadata})"
    )
    if kept_metadata:
        assert duplicates == 0


def test_done_offsets_travel_in_the_commit_metadata_on_a_broker_that_keeps_it(
    kafka: KafkaTarget, kafka_topic_factory: TopicFactory, group_id: str
) -> None:
    topic = kafka_topic_factory(1)
    produce(kafka.bootstrap_servers, topic, backlog(["user0"], orders_per_user=3))
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group_id})
    try:
        metadata = offsetmap.encode(1, {3, 4})
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 1, metadata=metadata)], asynchronous=False
        )
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    if committed.metadata is None:
        pytest.skip(
            "this broker drops offset commit metadata (Tansu does): point "
            "KAFKA_BOOTSTRAP_SERVERS at a Kafka broker to run it"
        )
    assert offsetmap.decode(committed.offset, committed.metadata) == {3, 4}


def committed_metadata(bootstrap_servers: str, group_id: str, topic: str) -> str | None:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id})
    try:
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    return committed.metadata  # type: ignore[no-any-return]
