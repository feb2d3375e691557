"""Crashes and shutdowns: kill -9 loses nothing; SIGTERM finishes in-flight work and commits it.

Every event here is an identify (one contact per user) or an order (one ticket per order id),
so the sandbox shows exactly which events were delivered and how often.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pytest

from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from processor.config import DeliveryConfig
from tests.kafka_support import OutgoingRecord, Record
from tests.processor_support import (
    UNLIMITED_RATE,
    StackFactory,
    account,
    backlog,
    contact_emails,
    email_of,
    order_subject,
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


def test_kill_9_mid_backlog_then_restart_loses_nothing(make_stack: StackFactory) -> None:
    # Issue 16's reference run: 2,000 events on 3 partitions, the default in-flight window,
    # kill -9 at 20 %. 100 users, so up to 100 keys are in flight at once.
    stack = make_stack(3)
    sandbox = stack.sandbox
    produced = stack.produce(orders_for(users=100, orders_per_user=19))
    orders = len(produced) - 100
    config = stack.config(
        trengo=UNLIMITED_RATE,
    )
    max_in_flight = DeliveryConfig().max_in_flight
    processor = stack.processor(config)

    with processor:
        wait_until(lambda: sum(ticket_subjects(sandbox).values()) >= orders // 5, 30, "20 %")
        processor.kill()
    delivered_before_kill = sum(ticket_subjects(sandbox).values())
    with processor:
        stack.wait_until_committed(produced, timeout=60)
        assert processor.stop() == 0, processor.log()

    dead_letters = stack.dead_letters()
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
    make_stack: StackFactory,
) -> None:
    stack = make_stack(1)
    sandbox = stack.sandbox
    produced = stack.produce(orders_for(users=8, orders_per_user=100))
    max_in_flight, shutdown_timeout = 8, 10.0
    config = stack.config(
        trengo=UNLIMITED_RATE,
        # No interval commit within this test: any commit is the shutdown's final one.
        kafka_overrides={"commit_interval_ms": 600_000},
        delivery={
            "max_in_flight": max_in_flight,
            "shutdown_timeout_seconds": shutdown_timeout,
            "retry_max_seconds": 600,
        },
    )

    with stack.processor(config) as processor:
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
    committed = stack.committed()
    # The final commit covers everything done: every event before it, and up to the first gap.
    assert committed == first_undelivered(produced, sandbox)
    assert 0 < committed[0] < len(produced)


def test_sigterm_abandons_hung_deliveries_after_the_timeout_and_restart_delivers_them(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(1)
    sandbox = stack.sandbox
    produced = stack.produce(orders_for(users=8, orders_per_user=40))
    shutdown_timeout, close_allowance = 3.0, 5.0
    config = stack.config(
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 8, "shutdown_timeout_seconds": shutdown_timeout},
    )
    # No interval commit in the first run: any commit is the shutdown's final one.
    first_run = {**config, "kafka": {**config["kafka"], "commit_interval_ms": 600_000}}

    with stack.processor(first_run, "first") as processor:
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
    assert stack.committed() == first_undelivered(produced, sandbox)

    sandbox.set_faults(hang=False)
    with stack.processor(config, "restarted") as processor:
        stack.wait_until_committed(produced, timeout=60)
        assert processor.stop() == 0, processor.log()
    ledger = account(produced, sandbox, stack.dead_letters())
    print(f"after restart: lost {len(ledger.lost)}, duplicates {ledger.duplicates}")
    assert ledger.lost == []
    assert ledger.dead_lettered == 0
