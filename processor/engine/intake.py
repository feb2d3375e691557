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
from processor.pipeline.plan import Plan, Rejection


@dataclass(frozen=True, slots=True)
class Part:
    """One event of a record (a transformation may fan a record out): type label and work."""

    message_type: str
    work: Plan | Rejection


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record after decode, validate and map: its ordering key, type label and work.

    ``more`` holds the events after the first when a transformation fanned the record out:
    all are delivered in order under the record's key, and its offset is done when all are.
    """

    key: str
    message_type: str
    work: Plan | Rejection
    log_fields: Mapping[str, object]
    more: tuple[Part, ...] = ()


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
        """Prepare each record and queue its events behind the earlier events of its key."""
        for record, ticket in batch:
            prepared = self._prepare(record)
            parts = (Part(prepared.message_type, prepared.work), *prepared.more)
            to_deliver = [part for part in parts if not self._skipped(part, prepared)]
            if not to_deliver:
                self._tracker.mark_done(ticket)
                continue
            if len(to_deliver) > 1:
                self._tracker.expect_parts(ticket, len(to_deliver))
            for part in to_deliver:
                item = WorkItem(
                    record=record,
                    ticket=ticket,
                    message_type=part.message_type,
                    work=part.work,
                    log_fields=prepared.log_fields,
                )
                self._scheduler.submit(prepared.key, item)

    @staticmethod
    def _skipped(part: Part, prepared: Prepared) -> bool:
        work = part.work
        if isinstance(work, Rejection) and work.skipped:
            metrics.EVENTS.labels(outcome="skipped", type=part.message_type).inc()
            log_outcome(logger, "skipped", work.reason, prepared.log_fields)
            return True
        return False
