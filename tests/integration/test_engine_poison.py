"""Poison events go to the dead-letter topic with the x-error-* headers; the rest is delivered.

Poison events share keys with good ones: a dead letter must not block its user's later events.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox
from tests.kafka_support import (
    OutgoingRecord,
    Record,
    TopicFactory,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
from tests.processor_support import (
    DEAD_LETTER_UNMAPPED,
    UNLIMITED_RATE,
    ProcessorProcess,
    account,
    end_offsets,
    header,
    identify_record,
    order_record,
    processor_config,
)

pytestmark = pytest.mark.integration


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


# name → (value, expected stage, a word the reason must contain, expected HTTP status)
POISON: dict[str, tuple[bytes | None, str, str, str | None]] = {
    "bad JSON": (b"{not json", "decode", "not valid JSON", None),
    "bad UTF-8": (b"\xff\xfe{}", "decode", "UTF-8", None),
    "JSON array": (b"[1, 2]", "decode", "array", None),
    "JSON string": (b'"identify"', "decode", "string", None),
    "empty value": (b"", "decode", "empty", None),
    "tombstone": (None, "decode", "tombstone", None),
    "traits not an object": (
        _json({"type": "identify", "userId": "alice", "traits": "alice@example.com"}),
        "validate",
        "traits",
        None,
    ),
    "userId an object": (
        _json({"type": "identify", "userId": {"id": 1}, "traits": {"email": "x@example.com"}}),
        "validate",
        "userId",
        None,
    ),
    "no type": (_json({"userId": "bob", "event": "Order Completed"}), "validate", "type", None),
    "unmapped track": (
        _json(
            {
                "type": "track",
                "event": "Newsletter Opened",
                "userId": "bob",
                "context": {"traits": {"email": "bob@example.com"}},
            }
        ),
        "map",
        "Newsletter Opened",
        None,
    ),
    "identify without email": (
        _json({"type": "identify", "userId": "bob", "traits": {"name": "Bob"}}),
        "map",
        "email",
        None,
    ),
    "email Trengo refuses": (
        _json({"type": "identify", "userId": "carol", "traits": {"email": "carol-at-example"}}),
        "deliver",
        "422",
        "422",
    ),
}


def poison_record(name: str, key: str) -> OutgoingRecord:
    value = POISON[name][0]
    return key.encode(), value, [("trace-id", name.encode())]


EVENTS = [
    identify_record("alice"),
    poison_record("bad JSON", "alice"),
    order_record("alice", "alice-1"),
    poison_record("traits not an object", "alice"),
    order_record("alice", "alice-2"),
    identify_record("bob"),
    poison_record("bad UTF-8", "bob"),
    order_record("bob", "bob-1"),
    poison_record("unmapped track", "bob"),
    poison_record("no type", "bob"),
    poison_record("identify without email", "bob"),
    order_record("bob", "bob-2"),
    poison_record("email Trengo refuses", "carol"),
    poison_record("userId an object", "dave"),
    poison_record("JSON array", "mallory"),
    poison_record("JSON string", "mallory"),
    poison_record("empty value", "mallory"),
    poison_record("tombstone", "mallory"),
]


def test_poison_events_are_dead_lettered_with_their_facts_and_the_rest_is_delivered(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    started_at = datetime.now(UTC)
    produced = produce(kafka.bootstrap_servers, topic, EVENTS)
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        pipeline=DEAD_LETTER_UNMAPPED,
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=30
        )
        counted = {
            stage: processor.metric("trengo_processor_dead_letters_total", stage=stage)
            for stage in ("decode", "validate", "map", "deliver")
        }
        assert processor.stop() == 0, processor.log()

    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=len(POISON))
    ledger = account(produced, sandbox, dead_letters)
    assert ledger.lost == []
    assert ledger.duplicates == 0
    assert ledger.delivered == len(EVENTS) - len(POISON)
    assert len(dead_letters) == len(POISON)
    by_name = {header(letter, "trace-id"): letter for letter in dead_letters}
    assert set(by_name) == set(POISON)
    for name, letter in by_name.items():
        assert name is not None
        _assert_dead_letter(name, letter, produced, topic, started_at)
    assert counted == Counter(stage for _value, stage, _word, _status in POISON.values())


def _assert_dead_letter(
    name: str, letter: Record, produced: list[Record], topic: str, started_at: datetime
) -> None:
    _value, stage, reason_word, status = POISON[name]
    original = next(r for r in produced if r.headers == (("trace-id", name.encode()),))
    assert header(letter, "x-error-stage") == stage, name
    assert reason_word in (header(letter, "x-error-reason") or ""), name
    assert header(letter, "x-error-status") == status, name
    assert header(letter, "x-original-topic") == topic
    assert header(letter, "x-original-partition") == str(original.partition)
    assert header(letter, "x-original-offset") == str(original.offset)
    assert header(letter, "x-attempts") == "1"
    first_attempt = datetime.fromisoformat(header(letter, "x-first-attempt-at") or "")
    assert started_at <= first_attempt <= datetime.now(UTC)
    assert (letter.key, letter.value) == (original.key, original.value)
    assert letter.headers[0] == ("trace-id", name.encode())
