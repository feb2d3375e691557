"""Coalescing: consecutive identifies of one key waiting in its queue become one call.

Only identifies that target the same contact in the same way are merged (they differ at most
in the name); the newest name is sent, and every merged event is committed with it.
"""

from __future__ import annotations

from collections import deque

from processor import metrics
from processor.engine.handler import WorkItem
from processor.pipeline.plan import IdentifyPlan


def take_coalesced(queue: deque[WorkItem]) -> WorkItem:
    """Pop the head item, merged with the identifies right behind it that it can stand for."""
    head = queue.popleft()
    while queue and _same_contact(head, queue[0]):
        newer = queue.popleft()
        newer.merged = [*head.all_items(), *newer.merged]
        head = newer
    if head.merged:
        metrics.UPDATES_SKIPPED.labels(reason="coalesced").inc(len(head.merged))
    return head


def _same_contact(older: WorkItem, newer: WorkItem) -> bool:
    if not (isinstance(older.work, IdentifyPlan) and isinstance(newer.work, IdentifyPlan)):
        return False
    old_create, new_create = older.work.create, newer.work.create
    same_create = (old_create is None) == (new_create is None) and (
        old_create is None
        or new_create is None
        or (old_create.channel_id, old_create.identifier)
        == (new_create.channel_id, new_create.identifier)
    )
    return older.work.contact == newer.work.contact and same_create
