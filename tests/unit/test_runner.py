"""RecordPreparer: decode → validate → map for one record, and never an exception out of it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from processor import runner
from processor.config import Settings
from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.intake import Intake
from processor.engine.offsets import OffsetTracker
from processor.pipeline.filters import EventFilter
from processor.pipeline.plan import Rejection, Skip, TicketPlan
from processor.pipeline.templates import EventTemplates
from processor.runner import RecordPreparer

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
        pytest.param("validate", "validate", "ann", "track", id="validate"),
        pytest.param("plan_event", "map", "k", "track", id="map"),
    ],
)
def test_an_exception_in_a_stage_is_that_records_rejection_at_that_stage(
    monkeypatch: pytest.MonkeyPatch, broken: str, stage: str, key: str, type_label: str
) -> None:
    monkeypatch.setattr(runner, broken, _raise)

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

    monkeypatch.setattr(runner, "event_fields", fields_without_user)

    with caplog.at_level(logging.ERROR, logger="processor.runner"):
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

    monkeypatch.setattr(runner, "validate", huge)

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

    monkeypatch.setattr(runner, "event_fields", no_fields)
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

    assert (prepared.key, prepared.message_type, prepared.work) == ("ann", "page", PAGE_SKIP)
    assert prepared.log_fields["messageId"] == "m-ann"
    assert prepared.log_fields["offset"] == 1
