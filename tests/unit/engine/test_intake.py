"""Intake: prepared records are queued behind their key; configured skips are done at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from processor import metrics
from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.intake import Intake, Part, Prepared
from processor.engine.offsets import CommitPoint, OffsetTicket, OffsetTracker
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


def test_records_are_queued_by_key_and_skipped_ones_are_done_at_once() -> None:
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
    by_reason = {"reason": "message_type"}
    skipped_before = (
        metrics.REGISTRY.get_sample_value("trengo_processor_skipped_total", by_reason) or 0
    )

    intake.accept(batch)

    assert [(key, item.record.offset) for key, item in scheduler.submitted] == [
        ("user-0", 0),
        ("user-0", 2),
        ("user-0", 4),
    ]
    after = metrics.REGISTRY.get_sample_value("trengo_processor_events_total", labels)
    assert after == before + 2
    skipped = metrics.REGISTRY.get_sample_value("trengo_processor_skipped_total", by_reason)
    assert skipped == skipped_before + 2
    assert tracker.pending_counts() == {(TOPIC, 0): 5}  # 0 is not done, so 1 and 3 wait
    for _key, item in scheduler.submitted:
        tracker.mark_done(item.ticket)
    assert {tp: point.position for tp, point in tracker.commit_points().items()} == {(TOPIC, 0): 5}


class CountingTracker(OffsetTracker):
    """An OffsetTracker that counts how it was told offsets are done."""

    def __init__(self) -> None:
        super().__init__()
        self.single_calls = 0
        self.batches: list[list[int]] = []

    def mark_done(self, ticket: OffsetTicket) -> bool:
        self.single_calls += 1
        return super().mark_done(ticket)

    def mark_all_done(self, tickets: Iterable[OffsetTicket]) -> None:
        tickets = list(tickets)
        self.batches.append([ticket.offset for ticket in tickets])
        super().mark_all_done(tickets)


def test_the_skipped_records_of_a_batch_are_marked_done_together() -> None:
    tracker = CountingTracker()
    tracker.assign([(TOPIC, 0)])
    intake = Intake(prepare, RecordingScheduler(), tracker)  # type: ignore[arg-type]
    batch = []
    for offset in (1, 3):  # both skipped
        ticket = tracker.register(TOPIC, 0, offset)
        assert ticket is not None
        batch.append((KafkaRecord(TOPIC, 0, offset, b"k", b"{}", (), None), ticket))

    intake.accept(batch)

    assert (tracker.single_calls, tracker.batches) == (0, [[1, 3]])
    assert tracker.commit_points()[(TOPIC, 0)] == CommitPoint(4, frozenset())


def test_a_fanned_out_record_whose_events_are_all_skipped_is_done_with_the_batch() -> None:
    def fanned_out(record: KafkaRecord) -> Prepared:
        skip = Skip("message_type", "Message type page not supported")
        return Prepared("user-1", "page", skip, {}, (Part("screen", skip),))

    tracker = CountingTracker()
    tracker.assign([(TOPIC, 0)])
    ticket = tracker.register(TOPIC, 0, 0)
    assert ticket is not None
    scheduler = RecordingScheduler()
    before = metrics.REGISTRY.get_sample_value(
        "trengo_processor_events_total", {"outcome": "skipped", "type": "screen"}
    )

    Intake(fanned_out, scheduler, tracker).accept(  # type: ignore[arg-type]
        [(KafkaRecord(TOPIC, 0, 0, b"k", b"{}", (), None), ticket)]
    )

    assert scheduler.submitted == []
    assert tracker.batches == [[0]]
    after = metrics.REGISTRY.get_sample_value(
        "trengo_processor_events_total", {"outcome": "skipped", "type": "screen"}
    )
    assert after == (before or 0) + 1
