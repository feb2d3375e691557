"""Coalescing: consecutive identifies of one contact become one call standing for all."""

from __future__ import annotations

import dataclasses
from collections import deque

from processor import metrics
from processor.engine.coalesce import take_coalesced
from processor.engine.handler import WorkItem
from processor.engine.offsets import OffsetTracker
from processor.pipeline.plan import (
    CreateContact,
    IdentifyPlan,
    Plan,
    ResolveContact,
    SetCustomField,
    UpdateContact,
)
from tests.unit.engine.fakes import CHANNEL, identify_plan, ticket_plan, work_item


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


def test_the_merged_identify_keeps_an_older_name_and_older_custom_fields() -> None:
    def with_fields(plan: IdentifyPlan, *fields: tuple[int, str]) -> IdentifyPlan:
        custom_fields = tuple(SetCustomField(field_id, value) for field_id, value in fields)
        return dataclasses.replace(plan, custom_fields=custom_fields)

    nameless = IdentifyPlan(
        contact=ResolveContact("a@example.com", "email", CHANNEL),
        update=UpdateContact(None),
        create=CreateContact(CHANNEL, "a@example.com", None),
    )
    queue = queue_of(
        with_fields(identify_plan("a@example.com", "Ann"), (1, "pro"), (2, "Acme")),
        with_fields(nameless, (1, "enterprise")),
    )

    merged = take_coalesced(queue).work

    assert merged == with_fields(
        identify_plan("a@example.com", "Ann"), (2, "Acme"), (1, "enterprise")
    )


def test_identifies_of_one_contact_on_two_partitions_are_not_merged() -> None:
    tracker = OffsetTracker()
    queue = deque(
        work_item(tracker, offset, identify_plan("a@example.com", f"A{offset}"), partition)
        for offset, partition in [(0, 0), (1, 1), (2, 1)]
    )

    head = take_coalesced(queue)

    assert [(item.record.partition, item.record.offset) for item in head.all_items()] == [(0, 0)]
    assert [item.record.offset for item in take_coalesced(queue).all_items()] == [1, 2]
