"""The transform stage in the prepare path: rename, drop and fan-out under one offset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from processor.config import Settings
from processor.engine.handler import KafkaRecord
from processor.engine.intake import Intake
from processor.engine.offsets import CommitPoint, OffsetTracker
from processor.pipeline.filters import EventFilter
from processor.pipeline.plan import Rejection, TicketPlan
from processor.pipeline.prepare import RecordPreparer
from processor.pipeline.templates import EventTemplates
from processor.pipeline.transform import load_transformation
from processor.render import render_event
from tests.unit.pipeline.test_prepare import RecordingScheduler

TOPIC = "events"
FIXTURE = (
    Path(__file__).parent.parent.parent / "fixtures" / "transformations" / "rename_drop_fan_out.js"
)
SETTINGS = Settings(
    destination={
        "apiToken": "t",
        "channelId": "7",
        "eventTemplateMap": [
            {"from": "Order Completed", "to": "Order {{ order_id }}"},
            {"from": "Part", "to": "Part {{ part }}"},
        ],
    },
    transformation={"javascript": str(FIXTURE)},
)


def _preparer() -> RecordPreparer:
    return RecordPreparer(
        SETTINGS,
        EventTemplates(SETTINGS.destination),
        EventFilter.from_settings(SETTINGS),
        load_transformation(SETTINGS.transformation),
    )


def _track(name: str, user: str = "u1", **fields: Any) -> bytes:
    event = {
        "type": "track",
        "event": name,
        "userId": user,
        "context": {"traits": {"email": f"{user}@example.com"}},
        "properties": {"order_id": 5},
        **fields,
    }
    return json.dumps(event).encode()


def _accept(*values: bytes) -> tuple[OffsetTracker, RecordingScheduler]:
    tracker = OffsetTracker()
    tracker.assign([(TOPIC, 0)])
    scheduler = RecordingScheduler()
    batch = []
    for offset, value in enumerate(values):
        ticket = tracker.register(TOPIC, 0, offset)
        assert ticket is not None
        batch.append((KafkaRecord(TOPIC, 0, offset, None, value, (), None), ticket))
    Intake(_preparer(), scheduler, tracker).accept(batch)  # type: ignore[arg-type]
    return tracker, scheduler


def _subjects(scheduler: RecordingScheduler) -> list[str | None]:
    plans = [item.work for _key, item in scheduler.submitted]
    return [plan.ticket.subject if isinstance(plan, TicketPlan) else None for plan in plans]


def test_renamed_event_is_mapped_under_its_new_name() -> None:
    _tracker, scheduler = _accept(_track("Checkout Done"))
    assert _subjects(scheduler) == ["Order 5"]


def test_dropped_event_is_skipped_and_its_offset_done() -> None:
    tracker, scheduler = _accept(_track("Debug Ping"))
    assert scheduler.submitted == []
    assert tracker.commit_points() == {(TOPIC, 0): CommitPoint(1, frozenset())}


def test_fan_out_parts_keep_their_order_and_key_and_the_offset_waits_for_all() -> None:
    tracker, scheduler = _accept(_track("Bundle Bought", properties={"parts": [1, 2, 3]}))
    assert _subjects(scheduler) == ["Part 1", "Part 2", "Part 3"]
    assert {key for key, _item in scheduler.submitted} == {"u1"}
    tickets = [item.ticket for _key, item in scheduler.submitted]
    for ticket in tickets[:-1]:
        tracker.mark_done(ticket)
        assert tracker.commit_points() == {}
    tracker.mark_done(tickets[-1])
    assert tracker.commit_points() == {(TOPIC, 0): CommitPoint(1, frozenset())}


def test_a_fanned_out_event_that_fails_validation_is_its_own_dead_letter() -> None:
    _tracker, scheduler = _accept(_track("Bundle Bought", properties={"parts": [1, "no-type"]}))
    works = [item.work for _key, item in scheduler.submitted]
    assert isinstance(works[0], TicketPlan)
    assert works[1] == Rejection("Event type is required", "validate")


def test_a_throwing_transformation_dead_letters_at_stage_transform() -> None:
    _tracker, scheduler = _accept(_track("Explode"))
    [(_key, item)] = scheduler.submitted
    assert item.work == Rejection("transformEvent threw Error: cannot handle Explode", "transform")


def test_render_shows_the_event_before_and_after_and_each_plan() -> None:
    transformation = load_transformation(SETTINGS.transformation)
    report = render_event(
        _track("Bundle Bought", properties={"parts": [1, 2]}), SETTINGS, transformation
    )
    assert report.count("after transformation (") == 2
    assert report.startswith('before transformation: {"type": "track", "event": "Bundle Bought"')
    assert "'Part 1'" in report and "'Part 2'" in report
    dropped = render_event(_track("Debug Ping"), SETTINGS, transformation)
    assert "skipped at transform (transformation): dropped by the transformation" in dropped
