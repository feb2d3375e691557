"""The prepare stage: decode → filter → validate → map for one record, one ordering-key rule
for every outcome, and never an exception out of it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from processor.config import Settings
from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.intake import Intake
from processor.engine.offsets import OffsetTracker
from processor.pipeline import prepare
from processor.pipeline.filters import EventFilter
from processor.pipeline.plan import (
    CreateTicket,
    PostMessage,
    Rejection,
    ResolveContact,
    Skip,
    TicketPlan,
)
from processor.pipeline.prepare import RecordPreparer, ordering_key, resumable_by_position
from processor.pipeline.templates import EventTemplates

TOPIC = "events"
SETTINGS = Settings(
    destination={
        "apiToken": "t",
        "channelId": "7",
        "eventTemplateMap": [{"from": "Order Completed", "to": "Order: {{ properties }}"}],
    }
)


def _preparer(settings: Settings = SETTINGS) -> RecordPreparer:
    return RecordPreparer(
        settings, EventTemplates(settings.destination), EventFilter.from_settings(settings)
    )


def _record(value: bytes, offset: int = 0, key: bytes | None = None) -> KafkaRecord:
    return KafkaRecord(TOPIC, 0, offset, key, value, (), None)


def _order(user: str, properties: dict[str, Any] | None = None) -> bytes:
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "context": {"traits": {"email": f"{user}@example.com"}},
        "properties": properties or {"order_id": 1},
    }
    return json.dumps(event).encode()


@dataclass
class RecordingScheduler:
    submitted: list[tuple[str, WorkItem]] = field(default_factory=list)

    def submit(self, key: str, item: WorkItem) -> None:
        self.submitted.append((key, item))


def test_a_lone_surrogate_user_id_is_one_dead_letter_and_the_batch_goes_on() -> None:
    """The issue's trigger: this record used to raise in prepare and abandon its whole batch."""
    tracker = OffsetTracker()
    tracker.assign([(TOPIC, 0)])
    scheduler = RecordingScheduler()
    values = [_order("ann"), rb'{"type":"track","userId":"\ud800"}', _order("bob")]
    batch = []
    for offset, value in enumerate(values):
        ticket = tracker.register(TOPIC, 0, offset)
        assert ticket is not None
        batch.append((_record(value, offset), ticket))

    Intake(_preparer(), scheduler, tracker).accept(batch)  # type: ignore[arg-type]

    works = [item.work for _key, item in scheduler.submitted]
    assert [type(work) for work in works] == [TicketPlan, Rejection, TicketPlan]
    assert works[1] == Rejection(
        "Event value holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text", "decode"
    )


def test_a_deeply_nested_property_renders_into_the_subject() -> None:
    depth = 800  # the JSON parser stops near the recursion limit (1,000)
    nested = b"[" * depth + b'"deep"' + b"]" * depth
    value = _order("ann", {"items": "NESTED"}).replace(b'"NESTED"', nested)

    prepared = _preparer()(_record(value))

    assert isinstance(prepared.work, TicketPlan)
    assert prepared.work.ticket.subject == "Order: items: deep"


def _raise(*_args: object, **_kwargs: object) -> Any:
    raise RuntimeError("boom \ud800")


class _FailingTemplates(EventTemplates):
    def render(self, event: str, properties: Any) -> str | None:
        return _raise()


@pytest.mark.parametrize(
    ("broken", "stage", "key", "type_label"),
    [
        pytest.param("decode", "decode", "k", "unknown", id="decode"),
        pytest.param("validate", "validate", "k", "track", id="validate"),
        pytest.param("plan_event", "map", "k", "track", id="map"),
    ],
)
def test_an_exception_in_a_stage_is_that_records_rejection_at_that_stage(
    monkeypatch: pytest.MonkeyPatch, broken: str, stage: str, key: str, type_label: str
) -> None:
    monkeypatch.setattr(prepare, broken, _raise)

    prepared = _preparer()(_record(_order("ann"), key=b"k"))

    assert prepared.work == Rejection("internal error: RuntimeError: boom \\ud800", stage)  # type: ignore[arg-type]
    assert (prepared.key, prepared.message_type) == (key, type_label)
    assert prepared.log_fields["offset"] == 0


def test_a_template_that_raises_outside_jinja_is_a_map_internal_error() -> None:
    prepared = RecordPreparer(
        SETTINGS, _FailingTemplates(SETTINGS.destination), EventFilter.from_settings(SETTINGS)
    )(_record(_order("ann")))

    assert prepared.work == Rejection("internal error: RuntimeError: boom \\ud800", "map")


def test_log_fields_that_cannot_be_built_are_a_decode_internal_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fields_without_user(**fields: Any) -> dict[str, object]:
        if fields["user_id"] is not None:
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")
        return {"offset": fields["offset"]}

    monkeypatch.setattr(prepare, "event_fields", fields_without_user)

    with caplog.at_level(logging.ERROR, logger="processor.pipeline.prepare"):
        prepared = _preparer()(_record(_order("ann"), offset=4))

    assert isinstance(prepared.work, Rejection)
    assert prepared.work.stage == "decode"
    assert prepared.work.reason.startswith("internal error: UnicodeEncodeError: ")
    assert prepared.log_fields == {"offset": 4}
    assert [record.getMessage() for record in caplog.records] == ["internal error in decode stage"]


def test_an_internal_error_reason_is_cut_to_a_header_sized_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def huge(*_args: object, **_kwargs: object) -> Any:
        raise ValueError("x" * 10_000)

    monkeypatch.setattr(prepare, "validate", huge)

    prepared = _preparer()(_record(_order("ann")))

    assert isinstance(prepared.work, Rejection)
    assert prepared.work.reason == "internal error: " + ("ValueError: " + "x" * 10_000)[:300]


def _page(user: str) -> bytes:
    return json.dumps({"type": "page", "userId": user, "messageId": f"m-{user}"}).encode()


PAGE_SKIP = Skip("message_type", "Message type page not supported")


def test_skipped_events_cost_no_log_fields_while_skips_are_not_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_fields(**_fields: Any) -> dict[str, object]:
        raise AssertionError("log fields built for a skipped event")

    monkeypatch.setattr(prepare, "event_fields", no_fields)
    preparer = _preparer()

    with caplog.at_level(logging.INFO):
        first = preparer(_record(_page("ann"), offset=1))
        second = preparer(_record(_page("bob"), offset=2))

    assert first is second  # one outcome shared by every page view
    assert (first.message_type, first.work, dict(first.log_fields)) == ("page", PAGE_SKIP, {})
    assert caplog.records == []


def test_skipped_events_carry_their_log_fields_when_skips_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="processor.engine.intake"):
        prepared = _preparer()(_record(_page("ann"), offset=1, key=b"k"))

    assert (prepared.key, prepared.message_type, prepared.work) == ("k", "page", PAGE_SKIP)
    assert prepared.log_fields["messageId"] == "m-ann"
    assert prepared.log_fields["offset"] == 1


POSITIONED = KafkaRecord("events", 3, 42, b"user", b"{}", (), None)
CONTACT = ResolveContact("a@example.com", "email", "1")


def plan(*, labels: tuple[str, ...] = (), message: bool = False, key: str | None) -> TicketPlan:
    return TicketPlan(
        "Order Completed",
        CONTACT,
        CreateTicket("1", "Order 5"),
        message=PostMessage("Hi", True) if message else None,
        labels=labels,
        event_key=key,
    )


def test_follow_ups_without_a_messageid_are_keyed_by_topic_partition_and_offset() -> None:
    for unkeyed in (plan(labels=("vip",), key=None), plan(message=True, key=None)):
        assert resumable_by_position(unkeyed, POSITIONED).event_key == "kafka:events/3/42"  # type: ignore[union-attr]


def test_a_messageid_or_a_ticket_without_follow_ups_is_left_alone() -> None:
    keyed = plan(labels=("vip",), key="msg-1")
    bare = plan(key=None)
    assert resumable_by_position(keyed, POSITIONED) is keyed
    assert resumable_by_position(bare, POSITIONED) is bare


def test_each_part_of_a_fan_out_has_its_own_key() -> None:
    parts = [
        resumable_by_position(plan(labels=("vip",), key=key), POSITIONED, part)
        for key in ("msg-1", None)
        for part in (0, 1)
    ]
    assert [(p.event_key, p.fanned_out) for p in parts if isinstance(p, TicketPlan)] == [
        ("msg-1#0", True),
        ("msg-1#1", True),
        ("kafka:events/3/42#0", True),
        ("kafka:events/3/42#1", True),
    ]
    assert resumable_by_position(plan(key=None), POSITIONED, 1) == plan(key=None)


def _user(user_id: object = None, anonymous_id: object = None) -> dict[str, Any]:
    return {"userId": user_id, "anonymousId": anonymous_id}


@pytest.mark.parametrize(
    ("key", "document", "expected"),
    [
        pytest.param(b"k", _user("ann"), "k", id="the-record-key-first"),
        pytest.param(None, _user("ann", "anon"), "ann", id="no-record-key-userId"),
        pytest.param(b"", _user("ann"), "ann", id="empty-record-key"),
        pytest.param(None, _user(None, "anon"), "anon", id="anonymousId"),
        pytest.param(None, _user(42), "42", id="numeric-userId"),
        pytest.param(None, _user("", "anon"), "anon", id="empty-userId"),
        pytest.param(None, _user(True, "anon"), "anon", id="bool-userId"),
        pytest.param(None, _user(["ann"], {"a": 1}), "0/7", id="list-and-object-ids"),
        pytest.param(None, _user("\ud800"), "\ud800", id="lone-surrogate-userId"),
        pytest.param(None, _user("u" * 100_000), "u" * 100_000, id="huge-userId"),
        pytest.param(b"\xff\xfe", _user("ann"), "\ufffd\ufffd", id="undecodable-record-key"),
        pytest.param(None, None, "0/7", id="not-decoded"),
        pytest.param(None, {}, "0/7", id="no-ids"),
    ],
)
def test_one_ordering_key_rule(key: bytes | None, document: Any, expected: str) -> None:
    record = KafkaRecord(TOPIC, 0, 7, key, b"{}", (), None)
    assert ordering_key(record, document) == expected


def _invalid(user: str) -> bytes:
    event = {"type": "identify", "userId": user, "context": {"traits": "not an object"}}
    return json.dumps(event).encode()


@pytest.mark.parametrize("key", [b"ann-key", None], ids=["record-key", "no-record-key"])
def test_a_rejected_and_a_valid_event_of_one_user_share_their_ordering_key(
    key: bytes | None,
) -> None:
    """Before, a valid event was ordered by the record's key and one rejected at validate by
    its userId: the user's dead letter and deliveries ran in different queues."""
    preparer = _preparer()
    valid = preparer(_record(_order("ann"), 0, key))
    rejected = preparer(_record(_invalid("ann"), 1, key))
    undecodable = preparer(_record(b"{not json", 2, key))
    assert isinstance(valid.work, TicketPlan)
    assert isinstance(rejected.work, Rejection) and rejected.work.stage == "validate"
    assert valid.key == rejected.key == (key.decode() if key else "ann")
    assert undecodable.key == (key.decode() if key else "0/2")
