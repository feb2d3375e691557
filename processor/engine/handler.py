"""What happens to one event once the scheduler hands it over: deliver, retry or dead-letter.

Outcomes follow the table in docs/errors.md, decided by the error class (``outcomes.py``) the
destination raised:

* delivered: Trengo accepted the work; the offset is done.
* transient (408, 429, 5xx, timeouts): tried again with full-jitter backoff (Retry-After wins),
  the key stays blocked; after ``retry_max_seconds`` the event is dead-lettered.
* permanent (other 4xx, rejections by the pipeline): dead-lettered at once.
* destination down (401, or a 403 whose probe with the same token is refused too): unless
  the token source holds a new token, the gate halts everything; the event waits, nothing is
  lost.
* forbidden action (403 while the token's probe gets through): dead-lettered, status 403.
* internal error (any other exception, while delivering or dead-lettering): retried with
  backoff like a transient failure; after ``retry_max_seconds`` dead-lettered with the reason
  ``internal error: <Type>: <text>``.
* too many dead letters among the latest deliveries (``delivery.max_dead_letter_ratio``): the
  gate halts until a restart, since only a fixed config helps.

A dead-lettered event is done only once the broker acknowledged the dead-letter record.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from prometheus_client import Counter

from processor import metrics
from processor.engine.backoff import Backoff
from processor.engine.clock import SYSTEM_CLOCK, Clock
from processor.engine.dead_letter_ratio import DeadLetterRatio
from processor.engine.destination import DestinationGate
from processor.engine.dlq import DeadLetter, DeadLetterError, DeadLetterWriter, Stage
from processor.engine.offsets import OffsetTicket, OffsetTracker
from processor.engine.outcomes import (
    SEND_ALLOWED,
    CallWithdrawn,
    DestinationDown,
    Forbidden,
    Outcome,
    PermanentError,
    TransientError,
)
from processor.logging import log_outcome
from processor.pipeline.plan import Plan, Rejection

logger = logging.getLogger(__name__)

Deliver = Callable[[Plan], Awaitable[object]]


class KafkaRecord(NamedTuple):
    """The parts of a consumed Kafka message the processor keeps (a named tuple: the poll
    thread makes one per record, and a tuple is the cheapest object to make)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an event is dead-lettered: the stage that gave up, the reason, Trengo's status."""

    stage: Stage
    reason: str
    status: int | None


@dataclass(slots=True)
class WorkItem:
    """One event on its way: the record, its offset ticket, and the plan or the rejection."""

    record: KafkaRecord
    ticket: OffsetTicket
    message_type: str
    work: Plan | Rejection
    log_fields: Mapping[str, object] = field(default_factory=dict)
    attempts: int = 0
    first_attempt_at: datetime | None = None
    first_attempt_monotonic: float | None = None
    halted_seconds_at_first_attempt: float = 0.0  # the gate's halted_seconds() back then
    merged: list[WorkItem] = field(default_factory=list)
    failure: Failure | None = None
    dead_letter_acknowledged: bool = False

    def all_items(self) -> list[WorkItem]:
        """This item and the earlier items merged into it (coalesced identifies)."""
        return [*self.merged, self]


class EventHandler:
    """The scheduler's handler: returns None when an event is done, else a retry delay."""

    def __init__(
        self,
        *,
        deliver: Deliver,
        dead_letters: DeadLetterWriter,
        tracker: OffsetTracker,
        gate: DestinationGate,
        backoff: Backoff,
        retry_max_seconds: float,
        dead_letter_ratio: DeadLetterRatio,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._deliver = deliver
        self._clock = clock
        self._dead_letters = dead_letters
        self._tracker = tracker
        self._gate = gate
        self._backoff = backoff
        self._retry_max_seconds = retry_max_seconds
        self._dead_letter_ratio = dead_letter_ratio

    async def handle(self, item: WorkItem) -> float | None:
        """Deliver or dead-letter one item; None when done, seconds to wait otherwise."""
        if not await self._may_start(item):
            return None  # partition revoked (maybe while halted): the new owner processes it
        self._tracker.note_attempt(item.ticket)  # progress, for the stall watch
        try:
            return await self._deliver_or_dead_letter(item)
        except Exception as error:  # a bug or an unforeseen failure: retried like a transient one
            return self._internal_error(item, error)

    async def _deliver_or_dead_letter(self, item: WorkItem) -> float | None:
        if item.failure is None:
            self._count_attempt(item)
            outcome = await self._attempt(item)
            self._count_delivery(item, outcome)
            if not isinstance(outcome, Failure):
                return outcome
            # Once decided, a failure is only ever dead-lettered: a refused dead-letter
            # produce retries the produce, never the Trengo call.
            item.failure = outcome
        return await self._dead_letter(item, item.failure)

    async def _attempt(self, item: WorkItem) -> float | Failure | None:
        """None: delivered; seconds: try again after them; Failure: dead-letter the event."""
        if isinstance(item.work, Rejection):
            return Failure(item.work.stage, item.work.reason, None)
        try:
            sent = await self._send(item)
        except Forbidden as forbidden:
            return await self._forbidden(item, forbidden)
        except DestinationDown as down:
            item.attempts -= 1  # not the event's fault
            if not self._gate.reload_token():  # a rotated token is tried at once
                self._gate.halt(down.reason)
            return 0.0
        except TransientError as error:
            return self._retry_or_give_up(item, error)
        except PermanentError as error:
            return Failure("deliver", error.reason, error.status)
        if sent:
            self._finish(item, "delivered")
        return None  # delivered, or withdrawn: not done, the partition's next owner delivers it

    async def _send(self, item: WorkItem) -> bool:
        """Deliver with every call checked, right before it goes out, to be still ours; False
        when a call was withdrawn because the partition is no longer ours."""
        assert not isinstance(item.work, Rejection)
        allowed = SEND_ALLOWED.set(functools.partial(self._tracker.is_current, item.ticket))
        try:
            await self._deliver(item.work)
        except CallWithdrawn as withdrawn:
            logger.info("%s", withdrawn, extra={**item.log_fields, "outcome": "withdrawn"})
            return False
        finally:
            SEND_ALLOWED.reset(allowed)
        return True

    def _count_delivery(self, item: WorkItem, outcome: float | Failure | None) -> None:
        """Feed a finished delivery to the dead-letter ratio; halt when it is past the max."""
        if isinstance(item.work, Rejection) or isinstance(outcome, float):
            return  # the data's fault, or not finished yet
        refused = outcome is not None and _refused_by_trengo(outcome)
        self._dead_letter_ratio.record(
            dead_lettered=refused, reason=outcome.reason if outcome else None
        )
        if self._dead_letter_ratio.exceeded() and not self._gate.halted:
            metrics.DEAD_LETTER_HALT.set(1)
            self._gate.halt_until_restart(self._dead_letter_ratio.describe())

    async def _forbidden(self, item: WorkItem, forbidden: Forbidden) -> float | Failure:
        """A 403 halts only when the token's probe is refused too; else only this is forbidden."""
        try:
            token_works = await self._gate.token_works()
        except TransientError as error:
            return self._retry_or_give_up(item, error)
        if token_works:
            return Failure("deliver", forbidden.reason, forbidden.status)
        item.attempts -= 1  # not the event's fault
        self._gate.halt(forbidden.reason)
        return 0.0

    async def _may_start(self, item: WorkItem) -> bool:
        """Wait while the destination is halted; False once the partition is not ours (or,
        while it is being revoked, when the item lies beyond the gaps being closed)."""
        if not self._tracker.start(item.all_items()[0].ticket, item.ticket):
            return False
        await self._gate.wait_open()
        return self._tracker.is_current(item.ticket)

    def _count_attempt(self, item: WorkItem) -> None:
        item.attempts += 1
        if item.first_attempt_at is None:
            item.first_attempt_at = datetime.fromtimestamp(self._clock.time(), UTC)
            item.first_attempt_monotonic = self._clock.monotonic()
            item.halted_seconds_at_first_attempt = self._gate.halted_seconds()

    def _retry_or_give_up(self, item: WorkItem, error: TransientError) -> float | Failure:
        if self._out_of_time(item):
            reason = f"gave up after {item.attempts} attempts: {error.reason}"
            return Failure("deliver", reason, error.status)
        return self._retry_delay(item, error.reason, _retry_reason(error), error.retry_after)

    def _internal_error(self, item: WorkItem, error: Exception) -> float:
        """An unexpected exception: retried until ``retry_max_seconds``, then dead-lettered."""
        reason = f"internal error: {type(error).__name__}: {error}"
        logger.error(
            "%s", reason, exc_info=error, extra={**item.log_fields, "attempts": item.attempts}
        )
        if not self._out_of_time(item):
            return self._retry_delay(item, reason, "internal")
        dead_lettering = item.failure is not None
        item.failure = Failure("deliver", reason, None)
        # Failing to dead-letter is not hurried along: the next try waits a backoff.
        return self._backoff.delay(item.attempts) if dead_lettering else 0.0

    def _out_of_time(self, item: WorkItem) -> bool:
        now = self._clock.monotonic()
        started = now if item.first_attempt_monotonic is None else item.first_attempt_monotonic
        halted = self._gate.halted_seconds() - item.halted_seconds_at_first_attempt
        return now - started - halted >= self._retry_max_seconds

    def _retry_delay(
        self, item: WorkItem, reason: str, label: str, retry_after: float | None = None
    ) -> float:
        metrics.RETRIES.labels(reason=label).inc()
        delay = self._backoff.delay(max(item.attempts, 1), retry_after)
        logger.warning(
            "retrying in %.1f s: %s",
            delay,
            reason,
            extra={**item.log_fields, "outcome": "retry", "attempts": item.attempts},
        )
        return delay

    async def _dead_letter(self, item: WorkItem, failure: Failure) -> float | None:
        # Merged identifies are dead-lettered together; on a retry only the unacknowledged ones
        # are sent again, so none appears twice in the dead-letter topic.
        pending = [event for event in item.all_items() if not event.dead_letter_acknowledged]
        results = await asyncio.gather(
            *(self._dead_letters.send(_letter(event, item, failure)) for event in pending),
            return_exceptions=True,
        )
        failures = []
        for event, result in zip(pending, results, strict=True):
            if isinstance(result, DeadLetterError):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                event.dead_letter_acknowledged = True
        if failures:
            metrics.RETRIES.labels(reason="dead_letter_produce").inc()
            logger.error("dead-letter produce failed, will retry: %s", failures[0])
            return self._backoff.delay(item.attempts)
        metrics.DEAD_LETTERS.labels(stage=failure.stage).inc(len(item.all_items()))
        for event in item.all_items():
            log_outcome(
                logger, "dead_lettered", f"{failure.stage}: {failure.reason}", event.log_fields
            )
        self._finish(item, "dead_lettered")
        return None

    def _finish(self, item: WorkItem, outcome: Outcome) -> None:
        finished_at = self._clock.time()
        delivered = outcome == "delivered"
        log_each = delivered and logger.isEnabledFor(logging.DEBUG)
        for event in item.all_items():
            self._tracker.mark_done(event.ticket)
            _events_counter(outcome, event.message_type).inc()
            if delivered and event.record.timestamp_ms:
                latency = finished_at - event.record.timestamp_ms / 1000
                metrics.EVENT_DELIVERY_LATENCY.observe(max(latency, 0.0))
            if log_each:
                logger.debug("event delivered", extra={**event.log_fields, "outcome": outcome})


# Labelled children looked up once: ``labels()`` costs more than counting, once per event.
@functools.cache
def _events_counter(outcome: str, message_type: str) -> Counter:
    return metrics.EVENTS.labels(outcome=outcome, type=message_type)


def _letter(event: WorkItem, head: WorkItem, failure: Failure) -> DeadLetter:
    record = event.record
    return DeadLetter(
        key=record.key,
        value=record.value,
        headers=record.headers,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        stage=failure.stage,
        reason=failure.reason,
        status=failure.status,
        attempts=max(head.attempts, 1),
        first_attempt_at=head.first_attempt_at or datetime.now(UTC),
    )


def _refused_by_trengo(failure: Failure) -> bool:
    """Trengo answered 4xx: the signature of a wrong channel, field id or template.

    A dead letter decided from a good answer (no contact found for a track, an ambiguous
    contact) or after retries ran out says nothing about the deploy: most sites track users
    Trengo never heard of.
    """
    return failure.status is not None and 400 <= failure.status < 500


def _retry_reason(error: TransientError) -> str:
    if error.status is None:
        return "connection"
    if error.status >= 500:
        return "http_5xx"
    return f"http_{error.status}"
