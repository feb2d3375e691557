"""Crashes and shutdowns: kill -9 loses nothing; SIGTERM finishes in-flight work and commits it.

Every event here is an identify (one contact per user) or an order (one ticket per order id),
so the sandbox shows exactly which events were delivered and how often.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from processor.config import DeliveryConfig
from tests.kafka_support import (
    OutgoingRecord,
    Record,
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
    backlog,
    contact_emails,
    email_of,
    end_offsets,
    order_subject,
    processor_config,
    ticket_subjects,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    return SandboxOptions(requests_per_minute=None, latency_ms=50)


def orders_for(users: int, orders_per_user: int) -> list[OutgoingRecord]:
    """Each user's identify, then their orders, users interleaved."""
    return backlog([f"user{number}" for number in range(users)], orders_per_user)


def first_undelivered(produced: Sequence[Record], sandbox: RunningSandbox) -> dict[int, int]:
    """Per partition, the offset of the first event the sandbox shows no effect of."""
    tickets, emails = ticket_subjects(sandbox), contact_emails(sandbox)
    firsts: dict[int, int] = {}
    for record in produced:
        if record.partition in firsts:
            continue
        user = (record.key or b"").decode()
        order_id = _order_id(record)
        delivered = (
            tickets[order_subject(order_id)] > 0
            if order_id is not None
            else email_of(user) in emails
        )
        if not delivered:
            firsts[record.partition] = record.offset
    return firsts


def answered_nothing_for(sandbox: RunningSandbox, seconds: float) -> bool:
    """True when the sandbox answered no request in the last ``seconds``."""
    answered = sandbox.requests()
    return not answered or time.time() - answered[-1].at >= seconds


def _order_id(record: Record) -> str | None:
    properties = json.loads(record.value or b"{}").get("properties") or {}
    order_id = properties.get("order_id")
    return None if order_id is None else str(order_id)


def test_kill_9_mid_backlog_then_restart_loses_nothing(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    # Issue 16's reference run: 2,000 events on 3 partitions, the default in-flight window,
    # kill -9 at 20 %. 100 users, so up to 100 keys are in flight at once.
    topic, dead_letter_topic = kafka_topic_factory(3), kafka_topic_factory(1)
    produced = produce(kafka.bootstrap_servers, topic, orders_for(users=100, orders_per_user=19))
    orders = len(produced) - 100
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
    )
    max_in_flight = DeliveryConfig().max_in_flight
    processor = ProcessorProcess(config, tmp_path)

    with processor:
        wait_until(lambda: sum(ticket_subjects(sandbox).values()) >= orders // 5, 30, "20 %")
        processor.kill()
    delivered_before_kill = sum(ticket_subjects(sandbox).values())
    with processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
        assert processor.stop() == 0, processor.log()

    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic)
    ledger = account(produced, sandbox, dead_letters)
    print(
        f"kill -9 after {delivered_before_kill} of {orders} tickets: lost {len(ledger.lost)}, "
        f"duplicates {ledger.duplicates} (max_in_flight {max_in_flight})"
    )
    assert ledger.lost == []
    assert dead_letters == []
    # A crash redelivers what was done but not yet committed: the calls in flight (Trengo
    # finishes them after the process died), the events that joined the done prefix since the
    # last commit (an early commit at a quarter of the window bounds them) and the done events
    # above a gap (none here: every user's orders move at one pace).
    assert ledger.duplicates <= max_in_flight


def test_sigterm_finishes_in_flight_work_starts_nothing_new_and_commits_it(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    produced = produce(kafka.bootstrap_servers, topic, orders_for(users=8, orders_per_user=100))
    max_in_flight, shutdown_timeout = 8, 10.0
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        # No interval commit within this test: any commit is the shutdown's final one.
        kafka_overrides={"commit_interval_ms": 600_000},
        delivery={
            "max_in_flight": max_in_flight,
            "shutdown_timeout_seconds": shutdown_timeout,
            "retry_max_seconds": 600,
        },
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_until(lambda: sum(ticket_subjects(sandbox).values()) >= 100, 30, "100 tickets")
        delivered_at_sigterm = sum(ticket_subjects(sandbox).values())
        started = time.monotonic()
        exit_code = processor.stop()
        shutdown_seconds = time.monotonic() - started
    delivered_after_sigterm = sum(ticket_subjects(sandbox).values()) - delivered_at_sigterm

    print(f"SIGTERM: exit in {shutdown_seconds:.2f} s, {delivered_after_sigterm} finished after")
    assert exit_code == 0, processor.log()
    assert shutdown_seconds < shutdown_timeout
    # Only what was in flight finishes (a few more may have started before the signal landed).
    assert delivered_after_sigterm <= 2 * max_in_flight
    committed = committed_offsets(kafka.bootstrap_servers, group_id, topic)
    # The final commit covers everything done: every event before it, and up to the first gap.
    assert committed == first_undelivered(produced, sandbox)
    assert 0 < committed[0] < len(produced)


def test_sigterm_abandons_hung_deliveries_after_the_timeout_and_restart_delivers_them(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    produced = produce(kafka.bootstrap_servers, topic, orders_for(users=8, orders_per_user=40))
    shutdown_timeout, close_allowance = 3.0, 5.0
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 8, "shutdown_timeout_seconds": shutdown_timeout},
    )
    # No interval commit in the first run: any commit is the shutdown's final one.
    first_run = {**config, "kafka": {**config["kafka"], "commit_interval_ms": 600_000}}

    with ProcessorProcess(first_run, tmp_path, "first") as processor:
        wait_until(lambda: sum(ticket_subjects(sandbox).values()) >= 50, 30, "50 tickets")
        sandbox.set_faults(hang=True)
        wait_until(lambda: answered_nothing_for(sandbox, 1.0), 10, "every delivery to hang")
        started = time.monotonic()
        assert processor.stop() == 0, processor.log()
        shutdown_seconds = time.monotonic() - started
        abandoned = processor.messages("abandoning")
    print(f"SIGTERM with hung Trengo: exit in {shutdown_seconds:.2f} s")
    assert shutdown_timeout <= shutdown_seconds < shutdown_timeout + close_allowance
    assert abandoned
    committed = committed_offsets(kafka.bootstrap_servers, group_id, topic)
    assert committed == first_undelivered(produced, sandbox)

    sandbox.set_faults(hang=False)
    with ProcessorProcess(config, tmp_path, "restarted") as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
        assert processor.stop() == 0, processor.log()
    ledger = account(produced, sandbox, consume_all(kafka.bootstrap_servers, dead_letter_topic))
    print(f"after restart: lost {len(ledger.lost)}, duplicates {ledger.duplicates}")
    assert ledger.lost == []
    assert ledger.dead_lettered == 0
