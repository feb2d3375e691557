"""What RudderStack would never have sent to Trengo is committed and counted as skipped by
reason, not dead-lettered, on the real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processor.sandbox.broker import KafkaTarget
from processor.sandbox.trengo import RunningSandbox
from tests.kafka_support import (
    OutgoingRecord,
    TopicFactory,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
from tests.processor_support import (
    UNLIMITED_RATE,
    ProcessorProcess,
    end_offsets,
    identify_record,
    order_record,
    order_subject,
    processor_config,
    ticket_subjects,
)

pytestmark = pytest.mark.integration


def record(user: str, **fields: Any) -> OutgoingRecord:
    return user.encode(), json.dumps({"userId": user, **fields}).encode(), []


def with_fields(outgoing: OutgoingRecord, **fields: Any) -> OutgoingRecord:
    key, value, headers = outgoing
    assert value is not None
    return key, json.dumps({**json.loads(value), **fields}).encode(), headers


DENIED = {"consentManagement": {"provider": "oneTrust", "deniedConsentIds": ["C0004"]}}
# reason → the events skipped for it
SKIPPED: dict[str, list[OutgoingRecord]] = {
    "message_type": [
        record("alice", type="page", name="Pricing"),
        record("alice", type="screen", name="Home"),
        record("alice", type="alias", previousId="anon-1"),
    ],
    "unmapped_event": [record("alice", type="track", event="Newsletter Opened")],
    "consent": [
        with_fields(order_record("alice", "denied-1"), context={"traits": {}, **DENIED}),
    ],
    "integrations": [
        with_fields(order_record("alice", "off-1"), integrations={"All": False}),
        with_fields(identify_record("bob"), integrations={"Trengo": False}),
    ],
}


def test_filtered_events_are_committed_and_counted_by_reason_not_dead_lettered(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    skipped = [event for events in SKIPPED.values() for event in events]
    events = [identify_record("alice"), *skipped, order_record("alice", "kept-1")]
    produced = produce(kafka.bootstrap_servers, topic, events)
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        destination={"oneTrustCookieCategories": [{"oneTrustCookieCategory": "C0004"}]},
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=30
        )
        by_reason = {
            reason: processor.metric("trengo_processor_skipped_total", reason=reason)
            for reason in (*SKIPPED, "ignore_types")
        }
        skipped_events = processor.metric("trengo_processor_events_total", outcome="skipped")
        dead_lettered = processor.metric("trengo_processor_dead_letters_total")
        skip_lines = processor.messages("event skipped")
        assert processor.stop() == 0, processor.log()

    assert by_reason == {**{r: len(e) for r, e in SKIPPED.items()}, "ignore_types": 0}
    assert skipped_events == len(skipped)
    assert dead_lettered == 0
    assert consume_all(kafka.bootstrap_servers, dead_letter_topic) == []
    assert skip_lines == []  # INFO logging: no line per skipped event
    tickets = ticket_subjects(sandbox)
    assert tickets[order_subject("kept-1")] == 1
    assert tickets[order_subject("denied-1")] == 0
    assert tickets[order_subject("off-1")] == 0
