"""Ticket follow-ups: the first message and the labels of a ticket, resumable after a failure.

After ``POST /tickets``, a plan with follow-ups costs one ``POST /tickets/{id}/messages`` (when
it has a message) and one ``POST /tickets/{id}/labels`` per label, in that order. Label ids are
looked up (``LabelDirectory``) before the ticket is opened, so a label missing in Trengo
dead-letters the event without opening a ticket.

Any follow-up can fail after the ticket opened, and retrying the whole plan would open a second
ticket. So from the moment its ticket opened until its last follow-up is done, an event's
progress is remembered under its ``event_key`` (the messageId, else the event's topic,
partition and offset) together with its contact: a retry continues with the follow-ups not yet
done, and a messageId reused by another contact's event never posts into this ticket. The
memory is bounded and lives in the process: after a restart the retry opens a new ticket
(at-least-once). Plans without an ``event_key`` are not resumable. The events a transformation
fans one record out into are keyed per part (``messageId#part``) and stay remembered once done
(until they expire): the record is redelivered whole when any part failed, and its finished
parts then cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from processor.pipeline.plan import ContactRef, TicketPlan
from processor.trengo import endpoints
from processor.trengo.client import TrengoClient
from processor.trengo.endpoints import TrengoId
from processor.trengo.errors import PermanentError
from processor.trengo.expiring import RESUMABLE_SIZE, RESUMABLE_TTL_SECONDS, Expiring
from processor.trengo.labels import LabelDirectory

OpenTicket = Callable[[], Awaitable[TrengoId | None]]  # the ticket id, if Trengo gave one
ProgressKey = tuple[str, ContactRef]


@dataclass(slots=True)
class _Progress:
    """How far one event got after its ticket opened."""

    ticket_id: TrengoId
    message_posted: bool = False
    attached_label_ids: set[str] = field(default_factory=set)


class TicketFollowUps:
    """Opens tickets with follow-ups and finishes them; one per API token."""

    def __init__(
        self,
        client: TrengoClient,
        labels: LabelDirectory,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._labels = labels
        self._in_progress: Expiring[ProgressKey, _Progress] = Expiring(
            RESUMABLE_SIZE, RESUMABLE_TTL_SECONDS, clock=clock
        )

    async def deliver(
        self,
        plan: TicketPlan,
        open_ticket: OpenTicket,
    ) -> None:
        """Open the ticket with ``open_ticket`` (unless a failed attempt of this event already
        did), then post its message and attach its labels."""
        label_ids = await self._labels.ids(plan.labels)
        key = _progress_key(plan)
        progress = self._in_progress.get(key) if key is not None else None
        if progress is None:
            progress = await self._open(plan, open_ticket)
        if plan.message is not None and not progress.message_posted:
            await self._client.send(endpoints.post_message(progress.ticket_id, plan.message))
            progress.message_posted = True
        for label_id in label_ids:
            if str(label_id) not in progress.attached_label_ids:
                await self._client.send(endpoints.attach_label(progress.ticket_id, label_id))
                progress.attached_label_ids.add(str(label_id))
        if key is not None and not plan.fanned_out:
            self._in_progress.pop(key)

    async def _open(self, plan: TicketPlan, open_ticket: OpenTicket) -> _Progress:
        ticket_id = await open_ticket()
        if ticket_id is None:
            raise PermanentError(
                "create_ticket: unexpected response (no ticket id): "
                "the ticket's message and labels were not sent"
            )
        progress = _Progress(ticket_id)
        key = _progress_key(plan)
        if key is not None:
            self._in_progress.put(key, progress)
        return progress


def _progress_key(plan: TicketPlan) -> ProgressKey | None:
    return None if plan.event_key is None else (plan.event_key, plan.contact)
