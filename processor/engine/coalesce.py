"""Coalescing: consecutive identifies of one key waiting in its queue become one call.

Only identifies of one partition that target the same contact in the same way are merged (a
merge across partitions could not be finished, nor dropped, when one of them is revoked; they
differ at most
in the name and the custom fields); the merged call sends the newest name and the newest value
of every custom field any of them set, so it leaves Trengo as the calls one by one would, and
every merged event is committed with it.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from processor import metrics
from processor.engine.handler import WorkItem
from processor.pipeline.plan import IdentifyPlan, UpdateContact


def take_coalesced(queue: deque[WorkItem]) -> WorkItem:
    """Pop the head item, merged with the identifies right behind it that it can stand for."""
    head = queue.popleft()
    while queue and _same_contact(head, queue[0]):
        newer = queue.popleft()
        newer.merged = [*head.all_items(), *newer.merged]
        assert isinstance(head.work, IdentifyPlan) and isinstance(newer.work, IdentifyPlan)
        newer.work = _merged(head.work, newer.work)
        head = newer
    if head.merged:
        metrics.UPDATES_SKIPPED.labels(reason="coalesced").inc(len(head.merged))
    return head


def _same_contact(older: WorkItem, newer: WorkItem) -> bool:
    if not (isinstance(older.work, IdentifyPlan) and isinstance(newer.work, IdentifyPlan)):
        return False
    if (older.record.topic, older.record.partition) != (newer.record.topic, newer.record.partition):
        return False
    old_create, new_create = older.work.create, newer.work.create
    same_create = (old_create is None) == (new_create is None) and (
        old_create is None
        or new_create is None
        or (old_create.channel_id, old_create.identifier)
        == (new_create.channel_id, new_create.identifier)
    )
    return older.work.contact == newer.work.contact and same_create


def _merged(older: IdentifyPlan, newer: IdentifyPlan) -> IdentifyPlan:
    """The newer plan, keeping what only the older one would have sent."""
    name = older.update.name if newer.update.name is None else newer.update.name
    newer_field_ids = {field.field_id for field in newer.custom_fields}
    kept = tuple(field for field in older.custom_fields if field.field_id not in newer_field_ids)
    create = None if newer.create is None else dataclasses.replace(newer.create, name=name)
    return dataclasses.replace(
        newer, update=UpdateContact(name), create=create, custom_fields=kept + newer.custom_fields
    )
