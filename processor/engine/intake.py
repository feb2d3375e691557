"""From polled records to scheduled work: run the pure stages, skip what config says to skip."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from processor import metrics
from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.keyed import KeyedScheduler
from processor.engine.offsets import OffsetTicket, OffsetTracker
from processor.logging import log_outcome
from processor.pipeline.plan import Plan, Rejection, Skip


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record after decode, filter, validate and map: its ordering key, type label and work."""

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
        for record, ticket in batch:
            prepared = self._prepare(record)
            work = prepared.work
            if isinstance(work, Skip):
                self._tracker.mark_done(ticket)
                metrics.EVENTS.labels(outcome="skipped", type=prepared.message_type).inc()
                metrics.SKIPPED_BY_REASON[work.reason].inc()
                # Skips are the bulk of a RudderStack topic: one line each only at DEBUG.
                if logger.isEnabledFor(logging.DEBUG):
                    log_outcome(logger, "skipped", work.detail, prepared.log_fields, logging.DEBUG)
                continue
            item = WorkItem(
                record=record,
                ticket=ticket,
                message_type=prepared.message_type,
                work=work,
                log_fields=prepared.log_fields,
            )
            self._scheduler.submit(prepared.key, item)
