"""The runner's own steps: letting go of partitions (gap filling), and follow-ups of an
event without a messageId resuming by position."""

from __future__ import annotations

import asyncio

import pytest

from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.keyed import KeyedScheduler
from processor.engine.offsets import CommitPoint, OffsetTracker
from processor.pipeline.plan import CreateTicket, PostMessage, ResolveContact, TicketPlan
from processor.runner import let_go, resumable_by_position
from tests.unit.engine.fakes import TOPIC, identify_plan, work_item

TP = (TOPIC, 0)

RECORD = KafkaRecord("events", 3, 42, b"user", b"{}", (), None)
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
        assert resumable_by_position(unkeyed, RECORD).event_key == "kafka:events/3/42"  # type: ignore[union-attr]


def test_a_messageid_or_a_ticket_without_follow_ups_is_left_alone() -> None:
    keyed = plan(labels=("vip",), key="msg-1")
    bare = plan(key=None)
    assert resumable_by_position(keyed, RECORD) is keyed
    assert resumable_by_position(bare, RECORD) is bare


def test_each_part_of_a_fan_out_has_its_own_key() -> None:
    parts = [
        resumable_by_position(plan(labels=("vip",), key=key), RECORD, part)
        for key in ("msg-1", None)
        for part in (0, 1)
    ]
    assert [(p.event_key, p.fanned_out) for p in parts if isinstance(p, TicketPlan)] == [
        ("msg-1#0", True),
        ("msg-1#1", True),
        ("kafka:events/3/42#0", True),
        ("kafka:events/3/42#1", True),
    ]
    assert resumable_by_position(plan(key=None), RECORD, 1) == plan(key=None)


@pytest.fixture
def tracker() -> OffsetTracker:
    tracker = OffsetTracker()
    tracker.assign([TP])
    return tracker


def items_at(tracker: OffsetTracker, offsets: range) -> dict[int, WorkItem]:
    return {
        offset: work_item(tracker, offset, identify_plan(f"u{offset}@x.com", "U"))
        for offset in offsets
    }


async def test_letting_go_fills_the_gaps_below_the_highest_started_offset_and_nothing_beyond(
    tracker: OffsetTracker,
) -> None:
    items = items_at(tracker, range(8))
    delivered: list[int] = []

    async def handle(item: WorkItem) -> float | None:
        if not tracker.start(item.ticket, item.ticket):
            return None
        delivered.append(item.record.offset)
        tracker.mark_done(item.ticket)
        return None

    for offset in (0, 4):  # delivered before the revoke; 1, 2, 3 and 5, 6, 7 were waiting
        assert tracker.start(items[offset].ticket, items[offset].ticket)
        tracker.mark_done(items[offset].ticket)
    scheduler: KeyedScheduler[WorkItem] = KeyedScheduler(handle, max_in_flight=2)
    for offset in (1, 2, 3, 5, 6, 7):
        scheduler.submit(f"user{offset}", items[offset])
    tracker.begin_revoke([TP])
    scheduler.start()

    assert await let_go(scheduler, tracker, [TP], timeout_seconds=5)

    await scheduler.stop()
    assert sorted(delivered) == [1, 2, 3]
    assert tracker.commit_points() == {TP: CommitPoint(5, frozenset())}


async def test_a_gap_that_cannot_close_in_time_is_left_and_its_retry_cancelled(
    tracker: OffsetTracker,
) -> None:
    items = items_at(tracker, range(3))
    attempts: list[int] = []

    async def handle(item: WorkItem) -> float | None:
        if not tracker.is_current(item.ticket):
            return None
        attempts.append(item.record.offset)
        return 0.01  # Trengo keeps failing

    assert tracker.start(items[2].ticket, items[2].ticket)
    tracker.mark_done(items[2].ticket)
    scheduler: KeyedScheduler[WorkItem] = KeyedScheduler(handle, max_in_flight=2)
    scheduler.submit("user", items[0])
    scheduler.submit("user", items[1])
    tracker.begin_revoke([TP])
    scheduler.start()

    assert not await let_go(scheduler, tracker, [TP], timeout_seconds=0.2)

    tried = len(attempts)
    await asyncio.sleep(0.1)
    assert len(attempts) == tried  # the retry timer was cancelled
    assert set(attempts) == {0}
    assert tracker.commit_points() == {TP: CommitPoint(0, frozenset({2}))}
    await scheduler.stop()
