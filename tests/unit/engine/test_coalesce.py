"""Coalescing: consecutive items of one key become one delivery standing for all of them.

The engine's part only: which plans merge is the rule it is given (``pipeline/merge.py``, tested
in ``tests/unit/pipeline/test_merge.py``); here a rule that merges identifies of one email.
"""

from __future__ import annotations

from collections import deque

from processor import metrics
from processor.engine.coalesce import take_coalesced
from processor.engine.handler import WorkItem
from processor.engine.offsets import OffsetTracker
from processor.pipeline.plan import IdentifyPlan, Plan, Rejection
from tests.unit.engine.fakes import identify_plan, ticket_plan, work_item


def same_email(older: Plan | Rejection, newer: Plan | Rejection) -> Plan | None:
    """Merge two identifies of one contact into the newer one."""
    if isinstance(older, IdentifyPlan) and isinstance(newer, IdentifyPlan):
        return newer if older.contact == newer.contact else None
    return None


def take(queue: deque[WorkItem]) -> WorkItem:
    return take_coalesced(queue, same_email)


def queue_of(*plans: Plan) -> deque[WorkItem]:
    tracker = OffsetTracker()
    return deque(work_item(tracker, offset, plan) for offset, plan in enumerate(plans))


def coalesced() -> float:
    labels = {"reason": "coalesced"}
    return metrics.REGISTRY.get_sample_value("trengo_processor_updates_skipped_total", labels) or 0


def test_the_newest_of_consecutive_mergeable_items_stands_for_the_older_ones() -> None:
    queue = queue_of(
        identify_plan("a@example.com", "A1"),
        identify_plan("a@example.com", "A2"),
        identify_plan("a@example.com", "A3"),
        ticket_plan("a@example.com", "Order 1"),
        identify_plan("a@example.com", "A4"),
    )
    before = coalesced()

    head = take(queue)

    assert head.work == identify_plan("a@example.com", "A3")
    assert [item.record.offset for item in head.all_items()] == [0, 1, 2]
    assert coalesced() == before + 2
    assert [item.record.offset for item in queue] == [3, 4]  # a ticket stops the merge


def test_items_the_rule_does_not_merge_are_taken_one_by_one() -> None:
    queue = queue_of(
        identify_plan("a@example.com", "A"),
        identify_plan("b@example.com", "B"),
        identify_plan("a@example.com", "A2"),
    )
    before = coalesced()

    assert [take(queue).record.offset for _ in range(3)] == [0, 1, 2]
    assert coalesced() == before


def test_the_merged_work_is_what_the_rule_returns() -> None:
    queue = queue_of(identify_plan("a@example.com", "A1"), identify_plan("a@example.com", "A2"))
    stand_in = ticket_plan("a@example.com", "merged")

    head = take_coalesced(queue, lambda _older, _newer: stand_in)

    assert head.work == stand_in
    assert [item.record.offset for item in head.all_items()] == [0, 1]


def test_items_of_one_contact_on_two_partitions_are_not_merged() -> None:
    tracker = OffsetTracker()
    queue = deque(
        work_item(tracker, offset, identify_plan("a@example.com", f"A{offset}"), partition)
        for offset, partition in [(0, 0), (1, 1), (2, 1)]
    )

    head = take(queue)

    assert [(item.record.partition, item.record.offset) for item in head.all_items()] == [(0, 0)]
    assert [item.record.offset for item in take(queue).all_items()] == [1, 2]
