"""Coalescing: consecutive identifies of one contact become one call standing for all."""

from __future__ import annotations

from collections import deque

from processor import metrics
from processor.engine.coalesce import take_coalesced
from processor.engine.handler import WorkItem
from processor.engine.offsets import OffsetTracker
from processor.pipeline.plan import IdentifyPlan, Plan, UpdateContact
from tests.unit.engine.fakes import identify_plan, ticket_plan, work_item


def queue_of(*plans: Plan) -> deque[WorkItem]:
    tracker = OffsetTracker()
    return deque(work_item(tracker, offset, plan) for offset, plan in enumerate(plans))


def coalesced() -> float:
    labels = {"reason": "coalesced"}
    return metrics.REGISTRY.get_sample_value("trengo_processor_updates_skipped_total", labels) or 0


def test_the_newest_of_consecutive_identifies_stands_for_the_older_ones() -> None:
    queue = queue_of(
        identify_plan("a@example.com", "A1"),
        identify_plan("a@example.com", "A2"),
        identify_plan("a@example.com", "A3"),
        ticket_plan("a@example.com", "Order 1"),
        identify_plan("a@example.com", "A4"),
    )
    before = coalesced()

    head = take_coalesced(queue)

    assert head.work == identify_plan("a@example.com", "A3")
    assert [item.record.offset for item in head.all_items()] == [0, 1, 2]
    assert coalesced() == before + 2
    assert [item.record.offset for item in queue] == [3, 4]  # a ticket stops the merge


def test_identifies_of_other_contacts_or_other_creations_are_not_merged() -> None:
    known_only = IdentifyPlan(
        contact=identify_plan("a@example.com", "A").contact,
        update=UpdateContact("A2"),
        create=None,
    )
    queue = queue_of(
        identify_plan("a@example.com", "A"),
        identify_plan("b@example.com", "B"),
        known_only,
    )
    assert take_coalesced(queue).all_items()[0].record.offset == 0
    assert take_coalesced(queue).record.offset == 1
    assert take_coalesced(queue).record.offset == 2
