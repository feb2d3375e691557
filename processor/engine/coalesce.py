"""Coalescing: consecutive items of one key waiting in its queue become one delivery.

Which plans one call can stand for is the product's rule (``pipeline/merge.py``), given to
``take_coalesced`` as ``merge``. The engine's own rule: items are merged only within one
partition (a merge across partitions could not be finished, nor dropped, when one of them is
revoked), and every merged event is done, or dead-lettered, with the delivery that stands
for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from processor import metrics
from processor.engine.handler import WorkItem
from processor.pipeline.plan import Plan, Rejection

# One plan standing for the older then the newer work; None when they cannot be merged.
Merge = Callable[[Plan | Rejection, Plan | Rejection], Plan | None]


def take_coalesced(queue: deque[WorkItem], merge: Merge) -> WorkItem:
    """Pop the head item, merged with the items right behind it that it can stand for."""
    head = queue.popleft()
    while queue and _same_partition(head, queue[0]):
        work = merge(head.work, queue[0].work)
        if work is None:
            break
        newer = queue.popleft()
        newer.merged = [*head.all_items(), *newer.merged]
        newer.work = work
        head = newer
    if head.merged:
        metrics.UPDATES_SKIPPED.labels(reason="coalesced").inc(len(head.merged))
    return head


def _same_partition(older: WorkItem, newer: WorkItem) -> bool:
    return (older.record.topic, older.record.partition) == (
        newer.record.topic,
        newer.record.partition,
    )
