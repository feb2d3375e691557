"""Trengo misbehaving: a long outage, a 429 storm, a revoked token. Nothing is lost or given up.

Each test ends by accounting for every produced event: delivered (its contact or ticket is in
the sandbox) or dead-lettered; none of these faults may dead-letter anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pytest

from devkit.sandbox.trengo import RecordedRequest, RunningSandbox
from tests.kafka_support import OutgoingRecord, Record
from tests.processor_support import (
    UNLIMITED_RATE,
    ProcessorStack,
    StackFactory,
    account,
    end_offsets,
    identify_record,
    order_record,
    ticket_subjects,
    wait_until,
)

pytestmark = pytest.mark.integration

PROBE_TERM = "trengo-processor-probe"  # processor.trengo.delivery.PROBE_TERM


def orders(users: Sequence[str], per_user: int, first: int = 0) -> list[OutgoingRecord]:
    """``per_user`` orders for each user, numbered from ``first``, users interleaved."""
    return [
        order_record(user, f"{user}-{number}")
        for number in range(first, first + per_user)
        for user in users
    ]


def assert_all_delivered_once(stack: ProcessorStack, produced: Sequence[Record]) -> None:
    """Nothing lost, nothing dead-lettered, no ticket twice."""
    dead_letters = stack.dead_letters()
    ledger = account(produced, stack.sandbox, dead_letters)
    assert ledger.lost == []
    assert dead_letters == []
    assert ledger.duplicates == 0


def test_a_60_s_outage_is_ridden_out_without_rebalance_or_dead_letters(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(2)
    sandbox = stack.sandbox
    users = [f"user{number}" for number in range(10)]
    config = stack.config(trengo=UNLIMITED_RATE, kafka_overrides={"max_poll_interval_ms": 10_000})
    outage_seconds = 60.0
    sandbox.set_faults(outage_seconds=outage_seconds)
    outage_ends = time.monotonic() + outage_seconds
    produced = stack.produce([identify_record(user) for user in users] + orders(users, per_user=5))

    with stack.processor(config) as processor:
        wait_until(lambda: processor.metric("trengo_processor_inflight_events") > 0, 30, "work")
        # Well past max.poll.interval.ms while every delivery keeps failing.
        wait_until(lambda: time.monotonic() > outage_ends - 30, outage_seconds, "the outage")
        assert processor.http_get("/healthz")[0] == 200
        assert processor.readyz()[0] == 200  # a Trengo outage is not a reason to go unready
        assert ticket_subjects(sandbox) == {}
        stack.wait_until_committed(produced, timeout=60)
        retries = processor.metric("trengo_processor_retries_total", reason="http_5xx")
        assignments = processor.messages("assigned")
        revocations = processor.messages("revoked") + processor.messages("lost")
        assert processor.stop() == 0, processor.log()

    assert time.monotonic() >= outage_ends
    assert retries > len(produced)  # every event failed at least once, most many times
    assert len(assignments) == 1, assignments
    assert revocations == []
    assert_all_delivered_once(stack, produced)


def test_a_429_storm_pauses_every_call_for_retry_after(make_stack: StackFactory) -> None:
    stack = make_stack(2)
    sandbox = stack.sandbox
    users = [f"user{number}" for number in range(20)]
    retry_after, storm = 3, 5
    config = stack.config(
        trengo=UNLIMITED_RATE, delivery={"max_in_flight": 16, "retry_cap_seconds": 10}
    )
    sandbox.set_faults(storm_429_requests=storm, storm_retry_after_seconds=retry_after)
    produced = stack.produce([identify_record(user) for user in users] + orders(users, per_user=5))

    with stack.processor(config) as processor:
        stack.wait_until_committed(produced, timeout=60)
        retried_429 = processor.metric("trengo_processor_retries_total", reason="http_429")
        assert processor.stop() == 0, processor.log()

    answered = sandbox.requests()
    refused = [request for request in answered if request.status == 429]
    assert len(refused) == storm
    assert retried_429 == storm
    first_refusal = min(request.at for request in refused)
    # Calls already on their way when the first 429 came back may land just after it; after
    # that, nothing until Retry-After has passed.
    too_early = [
        request
        for request in answered
        if first_refusal + 0.5 < request.at < first_refusal + retry_after - 0.05
    ]
    assert too_early == []
    for refusal in refused:
        retry = next(r for r in answered if r.index > refusal.index and _same_call(r, refusal))
        assert retry.at >= refusal.at + retry_after - 0.05
    assert_all_delivered_once(stack, produced)


def _same_call(one: RecordedRequest, other: RecordedRequest) -> bool:
    return (one.method, one.path, json.dumps(one.json_body)) == (
        other.method,
        other.path,
        json.dumps(other.json_body),
    )


# How the token stops working, and how it is fixed: a revoked token (401), and a token whose
# every call, the probe's included, is forbidden (403): both halt, neither dead-letters.
TOKEN_FAULTS = {
    "revoked-401": (
        lambda token: {"tokens": ("a-rotated-token",)},
        lambda token: {"tokens": (token,)},
    ),
    "forbidden-403": (
        lambda token: {"denied_tokens": (token,)},
        lambda token: {"denied_tokens": ()},
    ),
}


@pytest.mark.parametrize("fault", list(TOKEN_FAULTS))
def test_a_refused_token_halts_everything_and_a_fixed_token_resumes_by_itself(
    make_stack: StackFactory, fault: str
) -> None:
    refuse, fix = TOKEN_FAULTS[fault]
    partitions = 2
    stack = make_stack(partitions)
    sandbox = stack.sandbox
    users = [f"user{number}" for number in range(5)]
    config = stack.config(
        trengo=UNLIMITED_RATE, delivery={"max_in_flight": 8, "halt_probe_seconds": 0.5}
    )
    before = stack.produce([identify_record(user) for user in users] + orders(users, per_user=5))

    with stack.processor(config) as processor:
        stack.wait_until_committed(before, timeout=30)
        sandbox.set_faults(**refuse(sandbox.token))
        during = stack.produce(orders(users, per_user=10, first=5))

        def halted() -> bool:
            return (
                processor.metric("trengo_processor_destination_up") == 0
                and processor.metric("trengo_processor_partitions_paused") == partitions
                and processor.readyz()[0] == 503
            )

        wait_until(halted, 30, "the destination to halt")
        probes_at_halt = _probes(sandbox)
        wait_until(lambda: _probes(sandbox) >= probes_at_halt + 3, 30, "three more probes")
        assert halted()
        assert "destination halted" in " ".join(processor.readyz()[1]["reasons"])
        assert stack.committed() == end_offsets(before)
        assert stack.dead_letters() == []
        assert processor.metric("trengo_processor_events_total", outcome="dead_lettered") == 0
        assert sum(ticket_subjects(sandbox).values()) == len(before) - len(users)

        sandbox.set_faults(**fix(sandbox.token))
        fixed_at = time.monotonic()
        wait_until(lambda: processor.metric("trengo_processor_destination_up") == 1, 30, "resume")
        resumed_after = time.monotonic() - fixed_at
        stack.wait_until_committed(before + during, timeout=30)
        assert processor.readyz()[0] == 200
        assert processor.metric("trengo_processor_partitions_paused") == 0
        assert processor.stop() == 0, processor.log()

    print(f"resumed {resumed_after:.2f} s after the token was fixed")
    assert_all_delivered_once(stack, before + during)


def _probes(sandbox: RunningSandbox) -> int:
    return sum(1 for request in sandbox.requests() if request.query.get("term") == PROBE_TERM)


def test_rotating_the_token_file_resumes_a_halted_destination_without_a_restart(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(1)
    sandbox = stack.sandbox
    users = [f"user{number}" for number in range(3)]
    token_file = stack.workdir / "api-token"  # the chart's mounted Secret
    token_file.write_text(f"{sandbox.token}\n", encoding="utf-8")
    config = stack.config(
        destination={"apiToken": None},
        trengo={**UNLIMITED_RATE, "api_token_file": str(token_file)},
        delivery={"max_in_flight": 8, "halt_probe_seconds": 0.5},
    )
    before = stack.produce([identify_record(user) for user in users])

    with stack.processor(config) as processor:
        stack.wait_until_committed(before, timeout=30)
        sandbox.set_faults(tokens=("rotated-token",))  # the old token is revoked
        during = stack.produce(orders(users, per_user=2))
        wait_until(lambda: processor.metric("trengo_processor_destination_up") == 0, 30, "the halt")

        token_file.write_text("  rotated-token\n", encoding="utf-8")  # the Secret is updated

        wait_until(lambda: processor.metric("trengo_processor_destination_up") == 1, 30, "resume")
        stack.wait_until_committed(before + during, timeout=30)
        assert processor.stop() == 0, processor.log()

    assert_all_delivered_once(stack, before + during)
    assert stack.dead_letters() == []
