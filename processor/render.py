"""``trengo-processor render``: what one event would do, without touching the network.

Prints the outcome of decode → validate → map, then the exact requests the delivery stage
would send (method, full URL, JSON body) and when each one is sent. Contact ids that only a
search or a create would reveal are shown as ``{contact_id}``. The API token never appears.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from processor.config import Settings
from processor.pipeline.decode import decode
from processor.pipeline.map import plan_event
from processor.pipeline.plan import (
    IdentifyPlan,
    KnownContact,
    Plan,
    Rejection,
    ResolveContact,
    TicketPlan,
)
from processor.pipeline.templates import SubjectTemplates
from processor.pipeline.validate import validate
from processor.trengo import requests
from processor.trengo.delivery import EMAIL_FIND_OR_CREATE
from processor.trengo.requests import TrengoRequest

UNKNOWN_ID = "{contact_id}"


@dataclass(frozen=True, slots=True)
class Step:
    """A request and the condition under which it is sent."""

    when: str
    request: TrengoRequest


def render_event(value: bytes, settings: Settings) -> str:
    """The dry-run report for one event's bytes."""
    document = decode(value)
    if isinstance(document, Rejection):
        return _rejected(document, settings)
    message = validate(document, settings.pipeline.ignore_types)
    if isinstance(message, Rejection):
        return _rejected(message, settings)
    plan = plan_event(message, settings.destination, SubjectTemplates(settings.destination))
    if isinstance(plan, Rejection):
        return _rejected(plan, settings)
    lines = [f"event: {message.type} · messageId {message.messageId or '-'}", f"plan: {plan!r}"]
    lines.append("requests:")
    for number, step in enumerate(plan_steps(plan), start=1):
        request = step.request
        lines.append(
            f"  {number}. {request.method} {_shown_url(settings.trengo.base_url, request)}"
        )
        if request.json is not None:
            lines.append(f"     body: {json.dumps(request.json, ensure_ascii=False)}")
        lines.append(f"     when: {step.when}")
    return "\n".join(lines)


def plan_steps(plan: Plan) -> list[Step]:
    """The requests a plan may cause, in order, each with its condition."""
    if isinstance(plan, TicketPlan):
        return [*_lookup_steps(plan.contact), _ticket_step(plan)]
    return _identify_steps(plan)


def _lookup_steps(contact: ResolveContact | KnownContact) -> list[Step]:
    if isinstance(contact, KnownContact):
        return []
    return [
        Step(
            f"the contact id is not cached; only exact {contact.channel_identifier} matches count",
            requests.search_contacts(contact.identifier),
        )
    ]


def _ticket_step(plan: TicketPlan) -> Step:
    contact_id = plan.contact.contact_id if isinstance(plan.contact, KnownContact) else UNKNOWN_ID
    return Step(
        "always (no contact found → dead letter)", requests.create_ticket(contact_id, plan.ticket)
    )


def _identify_steps(plan: IdentifyPlan) -> list[Step]:
    contact = plan.contact
    update = Step(
        "the name differs from the one Trengo has (or was last sent)",
        requests.update_contact(
            contact.contact_id if isinstance(contact, KnownContact) else UNKNOWN_ID, plan.update
        ),
    )
    if isinstance(contact, KnownContact) or plan.create is None:
        return [update]
    create = requests.create_contact(plan.create)
    if contact is None:
        return [Step("always (enableDedup is off)", create)]
    if contact.channel_identifier == "email" and EMAIL_FIND_OR_CREATE:
        return [
            Step("the contact id is not cached (Trengo returns an existing email contact)", create),
            update,
        ]
    return [
        *_lookup_steps(contact),
        Step("the search found no exact match", create),
        Step(f"the search found the contact; {update.when}", update.request),
    ]


def _shown_url(base_url: str, request: TrengoRequest) -> str:
    return requests.url(base_url, request).replace(quote(UNKNOWN_ID, safe=""), UNKNOWN_ID)


def _rejected(rejection: Rejection, settings: Settings) -> str:
    if rejection.skipped:
        return f"skipped (pipeline.ignore_types): {rejection.reason}\nrequests: none"
    return (
        f"rejected at {rejection.stage}: {rejection.reason}\n"
        f"→ dead-letter topic {settings.kafka.dead_letter_topic}\nrequests: none"
    )
