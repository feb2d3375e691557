"""The commit protocol's bookkeeping: contiguous done offsets, epochs, revokes."""

from __future__ import annotations

import pytest

from processor.engine.offsets import OffsetTracker

TP = ("events", 0)


@pytest.mark.parametrize(
    ("registered", "done", "expected"),
    [
        pytest.param([0, 1, 2], [], None, id="nothing-done"),
        pytest.param([0, 1, 2], [0], 1, id="first-done"),
        pytest.param([0, 1, 2], [1, 2], None, id="gap-at-head-blocks"),
        pytest.param([0, 1, 2], [2, 0], 1, id="out-of-order-partial"),
        pytest.param([0, 1, 2], [2, 1, 0], 3, id="out-of-order-all"),
        pytest.param([5, 9, 12], [5, 9], 10, id="offset-gaps-are-not-waited-for"),
        pytest.param([5, 9, 12], [12, 9, 5], 13, id="offset-gaps-all-done"),
    ],
)
def test_commit_position_is_after_the_contiguous_done_prefix(
    registered: list[int], done: list[int], expected: int | None
) -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    tickets = {offset: tracker.register(*TP, offset) for offset in registered}
    for offset in done:
        ticket = tickets[offset]
        assert ticket is not None
        assert tracker.mark_done(ticket)
    assert tracker.commit_positions().get(TP) == expected


def test_a_committed_position_is_not_offered_again_until_it_advances() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    first, second = tracker.register(*TP, 0), tracker.register(*TP, 1)
    assert first is not None and second is not None
    tracker.mark_done(first)
    tracker.committed(tracker.commit_positions())
    assert tracker.commit_positions() == {}
    tracker.mark_done(second)
    assert tracker.commit_positions() == {TP: 2}
    assert tracker.committed_position(TP) == 1


def test_pending_count_holds_everything_not_yet_committable() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    tickets = [tracker.register(*TP, offset) for offset in range(4)]
    assert tracker.pending_count() == 4
    assert tickets[1] is not None and tickets[0] is not None
    tracker.mark_done(tickets[1])
    assert tracker.pending_count() == 4  # done but behind an unfinished offset
    tracker.mark_done(tickets[0])
    assert tracker.pending_count() == 2


def test_pending_counts_are_kept_per_partition() -> None:
    tracker = OffsetTracker()
    other = ("events", 1)
    tracker.assign([TP, other])
    first = tracker.register(*TP, 0)
    tracker.register(*TP, 1)
    tracker.register(*other, 0)
    assert tracker.pending_counts() == {TP: 2, other: 1}
    assert first is not None
    tracker.mark_done(first)
    tracker.drop([other])
    assert tracker.pending_counts() == {TP: 1}


def test_unassigned_partition_registers_nothing() -> None:
    tracker = OffsetTracker()
    assert tracker.register("events", 3, 0) is None


def test_work_finishing_after_a_revoke_never_counts_for_the_next_assignment() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    stale = tracker.register(*TP, 0)
    assert stale is not None
    tracker.drop([TP])
    tracker.assign([TP])  # the partition comes back: a new epoch
    fresh = tracker.register(*TP, 0)
    assert fresh is not None
    assert not tracker.mark_done(stale)
    assert not tracker.is_current(stale)
    assert tracker.commit_positions() == {}
    assert tracker.mark_done(fresh)
    assert tracker.commit_positions() == {TP: 1}


def test_revoking_partition_starts_no_work_but_still_counts_finishing_work() -> None:
    tracker = OffsetTracker()
    other = ("events", 1)
    tracker.assign([TP, other])
    running = tracker.register(*TP, 0)
    untouched = tracker.register(*other, 0)
    assert running is not None and untouched is not None
    tracker.begin_revoke([TP])
    assert not tracker.is_current(running)
    assert tracker.is_current(untouched)
    assert tracker.mark_done(running)
    assert tracker.commit_positions([TP]) == {TP: 1}
    tracker.drop([TP])
    assert tracker.assigned() == [other]


def test_pending_bytes_count_the_records_not_yet_committable() -> None:
    tracker = OffsetTracker()
    other = ("other", 0)
    tracker.assign([TP, other])
    tickets = [tracker.register(*TP, offset, size=100 * (offset + 1)) for offset in range(3)]
    tracker.register(*other, 0, size=7)
    assert tracker.pending_bytes() == {TP: 600, other: 7}

    tracker.mark_done(tickets[1])  # behind offset 0: still buffered
    assert tracker.pending_bytes()[TP] == 600
    tracker.mark_done(tickets[0])
    assert tracker.pending_bytes()[TP] == 300
