"""The runner's own step: letting go of revoked partitions (gap filling)."""

from __future__ import annotations

import asyncio

import pytest

from processor.engine.handler import WorkItem
from processor.engine.keyed import KeyedScheduler
from processor.engine.offsets import CommitPoint, OffsetTracker
from processor.runner import let_go
from tests.unit.engine.fakes import TOPIC, identify_plan, work_item

TP = (TOPIC, 0)


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
