"""Hostile input end to end: every class of bad event the pure stages must contain, interleaved
with good events on three partitions. Nothing stalls: every offset is committed, every good
ticket is opened, every undeliverable event is dead-lettered with its reason, the processor
stays ready, and only known Trengo routes are called."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox
from tests.kafka_support import (
    OutgoingRecord,
    TopicFactory,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
from tests.processor_support import (
    KNOWN_ROUTE,
    TEMPLATES,
    UNLIMITED_RATE,
    ProcessorProcess,
    account,
    end_offsets,
    header,
    identify_record,
    order_record,
    processor_config,
    ticket_subjects,
)

pytestmark = pytest.mark.integration

DEEP_EVENT = "Cart Nested"
DEEP_SUBJECT = "Cart items: deep"
# Deep enough for the old recursive flattening to overflow the stack, shallow enough for the
# JSON parser (which rejects deeper documents at decode).
DEEP = 900
SURROGATE_REASON = "lone UTF-16 surrogate"


def _track(user: str, event: str, properties: str, extra: str = "") -> bytes:
    return (
        f'{{"type":"track","event":"{event}","userId":"{user}",'
        f'"context":{{"traits":{{"email":"{user}@example.com"}}{extra}}},'
        f'"properties":{properties}}}'
    ).encode()


# name → (key, raw value, stage, a text the x-error-reason must contain)
HOSTILE: dict[str, tuple[str, bytes, str, str]] = {
    "surrogate userId": (
        "alice",
        rb'{"type":"identify","userId":"\ud800","traits":{"email":"alice@example.com"}}',
        "decode",
        SURROGATE_REASON,
    ),
    "surrogate event name": (
        "bob",
        _track("bob", r"Order Completed \udc00", '{"order_id":"x"}'),
        "decode",
        SURROGATE_REASON,
    ),
    "surrogate trait": (
        "carol",
        rb'{"type":"identify","userId":"carol","traits":{"email":"carol@example.com",'
        rb'"name":"Carol \ud83d"}}',
        "decode",
        SURROGATE_REASON,
    ),
    "surrogate property": (
        "dave",
        _track("dave", "Order Completed", r'{"order_id":"\udfff"}'),
        "decode",
        SURROGATE_REASON,
    ),
    "1e400": (
        "alice",
        _track("alice", "Order Completed", '{"order_id":"y","total":1e400}'),
        "decode",
        "number 1e400 is out of range for a double",
    ),
    "contact id ..": (
        "bob",
        _track(
            "bob",
            "Order Completed",
            '{"order_id":"z"}',
            ',"externalId":[{"type":"trengoContactId","id":".."}]',
        ),
        "map",
        'trengoContactId id must be a positive integer (at most 19 digits), got ".."',
    ),
    "contact id path": (
        "carol",
        _track(
            "carol",
            "Order Completed",
            '{"order_id":"w"}',
            ',"externalId":[{"type":"trengoContactId","id":"../../channels/1"}]',
        ),
        "map",
        "trengoContactId id must be a positive integer",
    ),
    "300-char email": (
        "dave",
        json.dumps(
            {"type": "identify", "userId": "dave", "traits": {"email": "d" * 288 + "@example.com"}}
        ).encode(),
        "map",
        "email is longer than Trengo accepts (at most 254 characters)",
    ),
    "bad JSON": ("erin", b'{"type": "identify", "userId": ', "decode", "not valid JSON"),
}


def _hostile(name: str) -> OutgoingRecord:
    key, value, _stage, _reason = HOSTILE[name]
    return key.encode(), value, [("trace-id", name.encode())]


def _deep_record(user: str) -> OutgoingRecord:
    nested = "[" * DEEP + '"deep"' + "]" * DEEP
    return user.encode(), _track(user, DEEP_EVENT, f'{{"items":{nested}}}'), []


def _events() -> list[OutgoingRecord]:
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    hostile = iter(HOSTILE)
    events: list[OutgoingRecord] = []
    for round_number in range(3):
        for user in users:
            if round_number == 0:
                events.append(identify_record(user))
            events.append(order_record(user, f"{user}-{round_number}"))
            name = next(hostile, None)
            if name is not None:
                events.append(_hostile(name))
    events.append(_deep_record("frank"))
    events.append(order_record("frank", "frank-last"))
    return events


def test_hostile_events_are_dead_lettered_and_never_stall_the_rest(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(3), kafka_topic_factory(1)
    events = _events()
    produced = produce(kafka.bootstrap_servers, topic, events)
    assert len({record.partition for record in produced}) >= 2
    templates = [*TEMPLATES, {"from": DEEP_EVENT, "to": "Cart {{ properties }}"}]
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        destination={"eventTemplateMap": templates},
        trengo=UNLIMITED_RATE,
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
        status, _body = processor.readyz()
        assert status == 200
        assert processor.process.poll() is None
        warnings = [r for r in processor.log_records() if r.get("level") in ("WARNING", "ERROR")]
        assert processor.stop() == 0, processor.log()

    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=len(HOSTILE))
    by_name = {header(letter, "trace-id"): letter for letter in dead_letters}
    assert len(dead_letters) == len(HOSTILE)
    assert set(by_name) == set(HOSTILE)
    for name, (_key, value, stage, reason) in HOSTILE.items():
        letter = by_name[name]
        assert header(letter, "x-error-stage") == stage, name
        assert reason in (header(letter, "x-error-reason") or ""), name
        assert letter.value == value
    ledger = account(produced, sandbox, dead_letters)
    deep = [record for record in ledger.lost if DEEP_EVENT.encode() in (record.value or b"")]
    assert ledger.lost == deep and len(deep) == 1  # account() knows only the order subjects
    assert ticket_subjects(sandbox)[DEEP_SUBJECT] == 1
    assert ledger.duplicates == 0
    api_path = urlsplit(sandbox.base_url).path.rstrip("/")
    called = {request.path for request in sandbox.requests()}
    assert called, "no Trengo call recorded"
    for path in called:
        assert path.startswith(api_path)
        assert KNOWN_ROUTE.fullmatch(path.removeprefix(api_path)), path
    logged = json.dumps(warnings)
    assert "d" * 288 not in logged and "@example.com" not in logged
