"""Trengo misbehaving: a long outage, a 429 storm, a revoked token. Nothing is lost or given up.

Each test ends by accounting for every produced event: delivered (its contact or ticket is in
the sandbox) or dead-lettered; none of these faults may dead-letter anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RecordedRequest, RunningSandbox
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
    end_offsets,
    identify_record,
    order_record,
    processor_config,
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


def assert_all_delivered_once(
    kafka: KafkaTarget, sandbox: RunningSandbox, produced: Sequence[Record], dead_letter_topic: str
) -> None:
    """Nothing lost, nothing dead-lettered, no ticket twice."""
    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic)
    ledger = account(produced, sandbox, dead_letters)
    assert ledger.lost == []
    assert dead_letters == []
    assert ledger.duplicates == 0


def test_a_60_s_outage_is_ridden_out_without_rebalance_or_dead_letters(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    users = [f"user{number}" for number in range(10)]
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        kafka_overrides={"max_poll_interval_ms": 10_000},
    )
    outage_seconds = 60.0
    sandbox.set_faults(outage_seconds=outage_seconds)
    outage_ends = time.monotonic() + outage_seconds
    produced = produce(
        kafka.bootstrap_servers,
        topic,
        [identify_record(user) for user in users] + orders(users, per_user=5),
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_until(lambda: processor.metric("trengo_processor_inflight_events") > 0, 30, "work")
        # Well past max.poll.interval.ms while every delivery keeps failing.
        wait_until(lambda: time.monotonic() > outage_ends - 30, outage_seconds, "the outage")
        assert processor.http_get("/healthz")[0] == 200
        assert processor.readyz()[0] == 200  # a Trengo outage is not a reason to go unready
        assert ticket_subjects(sandbox) == {}
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
        retries = processor.metric("trengo_processor_retries_total", reason="http_5xx")
        assignments = processor.messages("assigned")
        revocations = processor.messages("revoked") + processor.messages("lost")
        assert processor.stop() == 0, processor.log()

    assert time.monotonic() >= outage_ends
    assert retries > len(produced)  # every event failed at least once, most many times
    assert len(assignments) == 1, assignments
    assert revocations == []
    assert_all_delivered_once(kafka, sandbox, produced, dead_letter_topic)


def test_a_429_storm_pauses_every_call_for_retry_after(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    users = [f"user{number}" for number in range(20)]
    retry_after, storm = 3, 5
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 16, "retry_cap_seconds": 10},
    )
    sandbox.set_faults(storm_429_requests=storm, storm_retry_after_seconds=retry_after)
    produced = produce(
        kafka.bootstrap_servers,
        topic,
        [identify_record(user) for user in users] + orders(users, per_user=5),
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
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
    assert_all_delivered_once(kafka, sandbox, produced, dead_letter_topic)


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
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
    fault: str,
) -> None:
    refuse, fix = TOKEN_FAULTS[fault]
    partitions = 2
    topic, dead_letter_topic = kafka_topic_factory(partitions), kafka_topic_factory(1)
    users = [f"user{number}" for number in range(5)]
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 8, "halt_probe_seconds": 0.5},
    )
    before = produce(
        kafka.bootstrap_servers,
        topic,
        [identify_record(user) for user in users] + orders(users, per_user=5),
    )

    with ProcessorProcess(config, tmp_path) as processor:
        committed_before = end_offsets(before)
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, committed_before, timeout=30
        )
        sandbox.set_faults(**refuse(sandbox.token))
        during = produce(kafka.bootstrap_servers, topic, orders(users, per_user=10, first=5))

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
        assert committed_offsets(kafka.bootstrap_servers, group_id, topic) == committed_before
        assert consume_all(kafka.bootstrap_servers, dead_letter_topic) == []
        assert processor.metric("trengo_processor_events_total", outcome="dead_lettered") == 0
        assert sum(ticket_subjects(sandbox).values()) == len(before) - len(users)

        sandbox.set_faults(**fix(sandbox.token))
        fixed_at = time.monotonic()
        wait_until(lambda: processor.metric("trengo_processor_destination_up") == 1, 30, "resume")
        resumed_after = time.monotonic() - fixed_at
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(before + during), timeout=30
        )
        assert processor.readyz()[0] == 200
        assert processor.metric("trengo_processor_partitions_paused") == 0
        assert processor.stop() == 0, processor.log()

    print(f"resumed {resumed_after:.2f} s after the token was fixed")
    assert_all_delivered_once(kafka, sandbox, before + during, dead_letter_topic)


def _probes(sandbox: RunningSandbox) -> int:
    return sum(1 for request in sandbox.requests() if request.query.get("term") == PROBE_TERM)


def test_rotating_the_token_file_resumes_a_halted_destination_without_a_restart(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    users = [f"user{number}" for number in range(3)]
    token_file = tmp_path / "api-token"  # the chart's mounted Secret
    token_file.write_text(f"{sandbox.token}\n", encoding="utf-8")
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        destination={"apiToken": None},
        trengo={**UNLIMITED_RATE, "api_token_file": str(token_file)},
        delivery={"max_in_flight": 8, "halt_probe_seconds": 0.5},
    )
    before = produce(kafka.bootstrap_servers, topic, [identify_record(user) for user in users])

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(before), timeout=30
        )
        sandbox.set_faults(tokens=("rotated-token",))  # the old token is revoked
        during = produce(kafka.bootstrap_servers, topic, orders(users, per_user=2))
        wait_until(lambda: processor.metric("trengo_processor_destination_up") == 0, 30, "the halt")

        token_file.write_text("  rotated-token\n", encoding="utf-8")  # the Secret is updated

        wait_until(lambda: processor.metric("trengo_processor_destination_up") == 1, 30, "resume")
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(before + during), timeout=30
        )
        assert processor.stop() == 0, processor.log()

    assert_all_delivered_once(kafka, sandbox, before + during, dead_letter_topic)
    assert consume_all(kafka.bootstrap_servers, dead_letter_topic) == []
