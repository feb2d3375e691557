"""Intake: prepared records are queued behind their key; configured skips are done at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from processor import metrics
from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.intake import Intake, Prepared
from processor.engine.offsets import OffsetTracker
from processor.pipeline.plan import Skip
from tests.unit.engine.fakes import TOPIC, identify_plan


@dataclass
class RecordingScheduler:
    submitted: list[tuple[str, WorkItem]] = field(default_factory=list)

    def submit(self, key: str, item: WorkItem) -> None:
        self.submitted.append((key, item))


def prepare(record: KafkaRecord) -> Prepared:
    """Offsets 1 and 3 are ignored page events; the others identify user-<offset % 2>."""
    if record.offset in (1, 3):
        skip = Skip("message_type", "Message type page not supported")
        return Prepared("user-1", "page", skip, {"offset": record.offset})
    plan = identify_plan(f"u{record.offset}@example.com", "U")
    return Prepared(f"user-{record.offset % 2}", "identify", plan, {"offset": record.offset})


def skipped_by_reason(reason: str) -> float:
    sample = "trengo_processor_skipped_total"
    return metrics.REGISTRY.get_sample_value(sample, {"reason": reason}) or 0


def test_records_are_queued_by_key_and_skipped_ones_are_done_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="processor.engine.intake")
    tracker = OffsetTracker()
    tracker.assign([(TOPIC, 0)])
    scheduler = RecordingScheduler()
    intake = Intake(prepare, scheduler, tracker)  # type: ignore[arg-type]
    batch = []
    for offset in range(5):
        record = KafkaRecord(TOPIC, 0, offset, b"k", b"{}", (), None)
        ticket = tracker.register(TOPIC, 0, offset)
        assert ticket is not None
        batch.append((record, ticket))
    labels = {"outcome": "skipped", "type": "page"}
    before = metrics.REGISTRY.get_sample_value("trengo_processor_events_total", labels) or 0
    before_reason = skipped_by_reason("message_type")

    intake.accept(batch)

    assert [(key, item.record.offset) for key, item in scheduler.submitted] == [
        ("user-0", 0),
        ("user-0", 2),
        ("user-0", 4),
    ]
    after = metrics.REGISTRY.get_sample_value("trengo_processor_events_total", labels)
    assert after == before + 2
    assert skipped_by_reason("message_type") == before_reason + 2
    assert caplog.records == []  # no per-event line at INFO
    assert tracker.pending_counts() == {(TOPIC, 0): 5}  # 0 is not done, so 1 and 3 wait
    for _key, item in scheduler.submitted:
        tracker.mark_done(item.ticket)
    assert tracker.commit_positions() == {(TOPIC, 0): 5}


def test_skips_are_logged_per_event_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="processor.engine.intake")
    tracker = OffsetTracker()
    tracker.assign([(TOPIC, 0)])
    intake = Intake(prepare, RecordingScheduler(), tracker)  # type: ignore[arg-type]
    ticket = tracker.register(TOPIC, 0, 1)
    assert ticket is not None

    intake.accept([(KafkaRecord(TOPIC, 0, 1, b"k", b"{}", (), None), ticket)])

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "event skipped: Message type page not supported")
    ]
