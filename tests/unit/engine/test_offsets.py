"""The commit protocol's bookkeeping: contiguous done offsets, epochs, revokes."""

from __future__ import annotations

import pytest

from processor.engine.offsets import CommitPoint, OffsetTracker

TP = ("events", 0)


def tracker_with(registered: list[int], done: list[int]) -> OffsetTracker:
    """A tracker of partition TP with ``registered`` offsets polled and ``done`` of them done."""
    tracker = OffsetTracker()
    tracker.assign([TP])
    tickets = {offset: tracker.register(*TP, offset) for offset in registered}
    for offset in done:
        ticket = tickets[offset]
        assert ticket is not None
        assert tracker.mark_done(ticket)
    return tracker


@pytest.mark.parametrize(
    ("registered", "done", "expected"),
    [
        pytest.param([0, 1, 2], [], None, id="nothing-done"),
        pytest.param([0, 1, 2], [0], CommitPoint(1, frozenset()), id="first-done"),
        pytest.param([0, 1, 2], [1, 2], CommitPoint(0, frozenset({1, 2})), id="gap-at-head"),
        pytest.param([0, 1, 2], [2, 0], CommitPoint(1, frozenset({2})), id="out-of-order-partial"),
        pytest.param([0, 1, 2], [2, 1, 0], CommitPoint(3, frozenset()), id="out-of-order-all"),
        pytest.param([5, 9, 12], [5, 9], CommitPoint(10, frozenset()), id="offset-gaps-skipped"),
        pytest.param([5, 9, 12], [12, 9, 5], CommitPoint(13, frozenset()), id="offset-gaps-done"),
    ],
)
def test_commit_point_is_after_the_contiguous_done_prefix_with_the_done_offsets_above_it(
    registered: list[int], done: list[int], expected: CommitPoint | None
) -> None:
    assert tracker_with(registered, done).commit_points().get(TP) == expected


def test_a_committed_position_is_not_offered_again_until_it_advances() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    first, second = tracker.register(*TP, 0), tracker.register(*TP, 1)
    assert first is not None and second is not None
    tracker.mark_done(first)
    tracker.committed(tracker.commit_points())
    assert tracker.commit_points() == {}
    tracker.mark_done(second)
    assert tracker.commit_points() == {TP: CommitPoint(2, frozenset())}
    assert tracker.committed_position(TP) == 1


def test_uncommitted_prefix_counts_what_a_crash_would_redeliver_in_order() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP, ("events", 1)])
    tickets = [tracker.register(*TP, offset) for offset in range(6)]
    other = tracker.register("events", 1, 0)
    assert other is not None and all(ticket is not None for ticket in tickets)
    for ticket in [*tickets[:2], tickets[4], other]:
        tracker.mark_done(ticket)  # type: ignore[arg-type]
    assert tracker.uncommitted_prefix() == 3  # 4 lies above the gap at 2

    points = tracker.commit_points()
    tracker.mark_done(tickets[2])  # finishes while the commit is on its way
    tracker.committed(points)
    assert tracker.uncommitted_prefix() == 1

    tracker.commit_points()  # this commit fails: nothing recorded as committed
    assert tracker.uncommitted_prefix() == 1


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


@pytest.mark.parametrize(
    ("registered", "done", "expected"),
    [
        pytest.param([], [], None, id="nothing-polled"),
        pytest.param([7, 8, 9], [], 7, id="nothing-done"),
        pytest.param([7, 8, 9], [8], 7, id="done-behind-the-first"),
        pytest.param([7, 8, 9], [7], 8, id="first-done"),
        pytest.param([7, 8, 9], [7, 8, 9], None, id="all-done"),
    ],
)
def test_first_pending_is_the_lowest_offset_not_yet_done(
    registered: list[int], done: list[int], expected: int | None
) -> None:
    """Where the lag counts from while this consumer has committed nothing."""
    tracker = tracker_with(registered, done)
    assert tracker.first_pending(TP) == expected
    assert tracker.first_pending(("unassigned", 0)) is None


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
    assert tracker.commit_points() == {}
    assert tracker.mark_done(fresh)
    assert tracker.commit_points() == {TP: CommitPoint(1, frozenset())}


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
    assert tracker.commit_points([TP]) == {TP: CommitPoint(1, frozenset())}
    tracker.drop([TP])
    assert tracker.assigned() == [other]


def test_while_revoking_only_events_below_the_highest_started_offset_may_start() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    tickets = [tracker.register(*TP, offset) for offset in range(6)]
    assert all(ticket is not None for ticket in tickets)
    gap, started, done, beyond = tickets[1], tickets[3], tickets[4], tickets[5]
    assert gap is not None and started is not None and done is not None and beyond is not None
    assert tracker.start(done, done)
    assert tracker.mark_done(done)
    assert tracker.start(started, started)  # still running at the revoke

    tracker.begin_revoke([TP])

    assert tracker.is_current(started)  # may go on and finish
    assert tracker.start(gap, gap)  # fills a gap below offset 4
    assert not tracker.start(beyond, beyond)  # nothing beyond the highest started offset
    assert not tracker.is_current(beyond)
    tracker.drop([TP])
    assert not tracker.is_current(started)


def test_a_coalesced_delivery_starts_when_its_oldest_event_fills_a_gap() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    oldest, top, newest = (tracker.register(*TP, offset) for offset in (0, 1, 2))
    assert oldest is not None and top is not None and newest is not None
    assert tracker.start(top, top)
    tracker.begin_revoke([TP])

    assert tracker.start(oldest, newest)
    assert tracker.is_current(newest)


def test_offsets_the_previous_owner_finished_are_done_on_registration() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP], finished={TP: frozenset({1, 2, 4})})

    tickets = {offset: tracker.register(*TP, offset) for offset in range(6)}

    assert [offset for offset, ticket in tickets.items() if ticket is None] == [1, 2, 4]
    assert tracker.commit_points() == {TP: CommitPoint(0, frozenset({1, 2, 4}))}
    first = tickets[0]
    assert first is not None and tracker.mark_done(first)
    assert tracker.commit_points() == {TP: CommitPoint(3, frozenset({4}))}


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


def test_a_fanned_out_offset_is_done_when_all_its_parts_are() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    fanned, single = tracker.register(*TP, 0), tracker.register(*TP, 1)
    assert fanned is not None and single is not None
    tracker.expect_parts(fanned, 3)
    assert tracker.mark_done(single)
    for _part in range(2):
        assert tracker.mark_done(fanned)
        assert tracker.commit_points() == {TP: CommitPoint(0, frozenset({1}))}
    assert tracker.mark_done(fanned)
    assert tracker.commit_points() == {TP: CommitPoint(2, frozenset())}


def test_parts_of_a_revoked_assignment_do_not_carry_over() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    stale = tracker.register(*TP, 0)
    assert stale is not None
    tracker.expect_parts(stale, 2)
    tracker.drop([TP])
    tracker.assign([TP])
    fresh = tracker.register(*TP, 0)
    assert fresh is not None
    tracker.expect_parts(stale, 5)  # ignored: an old epoch
    assert tracker.mark_done(fresh)  # one part: the redelivered record was not fanned out yet
    assert tracker.commit_points() == {TP: CommitPoint(1, frozenset())}


def test_a_batch_of_offsets_is_marked_done_at_once_per_partition() -> None:
    now = [0.0]
    tracker = OffsetTracker(clock=lambda: now[0])
    other = ("events", 1)
    tracker.assign([TP, other])
    tickets = [tracker.register(*TP, offset) for offset in range(4)]
    theirs = tracker.register(*other, 0)
    assert all(ticket is not None for ticket in tickets) and theirs is not None
    now[0] = 5.0

    tracker.mark_all_done([tickets[0], tickets[1], tickets[3], theirs])  # type: ignore[list-item]

    assert tracker.commit_points() == {
        TP: CommitPoint(2, frozenset({3})),
        other: CommitPoint(1, frozenset()),
    }
    assert tracker.pending_counts() == {TP: 2, other: 0}
    now[0] = 7.0
    assert tracker.idle_seconds() == {TP: (2, 2.0)}  # the batch counts as progress


def test_a_batch_ignores_stale_tickets_and_waits_for_the_parts_of_a_fanned_out_offset() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    stale = tracker.register(*TP, 0)
    tracker.drop([TP])
    tracker.assign([TP])
    fanned, single = tracker.register(*TP, 0), tracker.register(*TP, 1)
    assert stale is not None and fanned is not None and single is not None
    tracker.expect_parts(fanned, 2)

    tracker.mark_all_done([stale, fanned, single])

    assert tracker.commit_points() == {TP: CommitPoint(0, frozenset({1}))}  # one part to go
    tracker.mark_all_done([fanned])
    assert tracker.commit_points() == {TP: CommitPoint(2, frozenset())}


def test_an_empty_batch_changes_nothing() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    tracker.register(*TP, 0)
    tracker.mark_all_done([])
    assert tracker.commit_points() == {}
