"""From polled records to scheduled work: run the pure stages, skip what is not for Trengo.

Skipped events are done at once and counted once per batch (``events_total{outcome="skipped"}``
and ``skipped_total{reason}``); they are logged one by one only at DEBUG: most of a site's
stream is skipped, and a log line per page view would cost more than the skip itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from processor import metrics
from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.keyed import KeyedScheduler
from processor.engine.offsets import OffsetTicket, OffsetTracker
from processor.logging import log_outcome
from processor.pipeline.plan import Plan, Rejection, Skip, SkipReason


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record after decode, validate and map: its ordering key, type label and work."""

    key: str
    message_type: str
    work: Plan | Rejection | Skip
    log_fields: Mapping[str, object]


logger = logging.getLogger(__name__)

Prepare = Callable[[KafkaRecord], Prepared]


class Intake:
    """Called on the event loop with each polled batch; never blocks."""

    def __init__(
        self, prepare: Prepare, scheduler: KeyedScheduler[WorkItem], tracker: OffsetTracker
    ) -> None:
        self._prepare = prepare
        self._scheduler = scheduler
        self._tracker = tracker

    def accept(self, batch: list[tuple[KafkaRecord, OffsetTicket]]) -> None:
        """Prepare each record and queue it behind the earlier events of its key."""
        skipped: Counter[tuple[str, SkipReason]] = Counter()
        log_skips = logger.isEnabledFor(logging.DEBUG)
        for record, ticket in batch:
            prepared = self._prepare(record)
            work = prepared.work
            if isinstance(work, Skip):
                self._tracker.mark_done(ticket)
                skipped[prepared.message_type, work.reason] += 1
                if log_skips:
                    log_outcome(logger, "skipped", work.detail, prepared.log_fields)
                continue
            item = WorkItem(
                record=record,
                ticket=ticket,
                message_type=prepared.message_type,
                work=work,
                log_fields=prepared.log_fields,
            )
            self._scheduler.submit(prepared.key, item)
        for (message_type, reason), count in skipped.items():
            metrics.EVENTS.labels(outcome="skipped", type=message_type).inc(count)
            metrics.SKIPPED.labels(reason=reason).inc(count)
