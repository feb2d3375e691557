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
class Part:
    """One event of a record (a transformation may fan a record out): type label and work."""

    message_type: str
    work: Plan | Rejection | Skip


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record after decode, validate and map: its ordering key, type label and work.

    ``more`` holds the events after the first when a transformation fanned the record out:
    all are delivered in order under the record's key, and its offset is done when all are.
    """

    key: str
    message_type: str
    work: Plan | Rejection | Skip
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
        """Prepare each record and queue its events behind the earlier events of its key;
        the records skipped whole are marked done together, at the end of the batch."""
        skipped: Counter[tuple[str, SkipReason]] = Counter()
        done: list[OffsetTicket] = []
        log_skips = skips_logged()
        for record, ticket in batch:
            prepared = self._prepare(record)
            work = prepared.work
            if isinstance(work, Skip) and not prepared.more:  # most of a site's stream
                skipped[prepared.message_type, work.reason] += 1
                if log_skips:
                    log_outcome(logger, "skipped", work.detail, prepared.log_fields)
                done.append(ticket)
                continue
            if not self._queue(record, ticket, prepared, skipped, log_skips):
                done.append(ticket)
        self._tracker.mark_all_done(done)
        for (message_type, reason), count in skipped.items():
            metrics.EVENTS.labels(outcome="skipped", type=message_type).inc(count)
            metrics.SKIPPED.labels(reason=reason).inc(count)

    def _queue(
        self,
        record: KafkaRecord,
        ticket: OffsetTicket,
        prepared: Prepared,
        skipped: Counter[tuple[str, SkipReason]],
        log_skips: bool,
    ) -> bool:
        """Queue the record's events that are not skipped; False when all of them are."""
        to_deliver = []
        for part in (Part(prepared.message_type, prepared.work), *prepared.more):
            work = part.work
            if isinstance(work, Skip):
                skipped[part.message_type, work.reason] += 1
                if log_skips:
                    log_outcome(logger, "skipped", work.detail, prepared.log_fields)
            else:
                to_deliver.append((part.message_type, work))
        if not to_deliver:
            return False
        if len(to_deliver) > 1:
            self._tracker.expect_parts(ticket, len(to_deliver))
        for message_type, work in to_deliver:
            item = WorkItem(
                record=record,
                ticket=ticket,
                message_type=message_type,
                work=work,
                log_fields=prepared.log_fields,
            )
            self._scheduler.submit(prepared.key, item)
        return True


def skips_logged() -> bool:
    """Whether skipped events are logged one by one (at DEBUG): then they need log fields."""
    return logger.isEnabledFor(logging.DEBUG)
