"""``trengo-processor render``: what one event would do, without touching the network.

Prints the outcome of decode → filter → validate → map (a filtered event: which rule
skipped it and why), then the exact requests the delivery stage
would send (method, full URL, JSON body) and when each one is sent. Ids that only a search or
a create would reveal are shown as ``{contact_id}``, ``{ticket_id}``, ``{profile_id}``,
``{channel_type}`` and
``{label_id of 'name'}``. The API token never appears.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from processor.config import Settings, TrengoConfig
from processor.pipeline.decode import decode
from processor.pipeline.filters import EventFilter
from processor.pipeline.map import plan_event
from processor.pipeline.plan import (
    ContactRef,
    GroupPlan,
    IdentifyPlan,
    KnownContact,
    Plan,
    Rejection,
    Skip,
    TicketPlan,
)
from processor.pipeline.templates import EventTemplates
from processor.pipeline.transform import Transformation
from processor.pipeline.validate import validate
from processor.trengo import endpoints
from processor.trengo.endpoints import ContactId, TrengoRequest
from processor.trengo.labels import REFRESH_INTERVAL_SECONDS

UNKNOWN_ID = "{contact_id}"
UNKNOWN_TICKET_ID = "{ticket_id}"
UNKNOWN_PROFILE_ID = "{profile_id}"
UNKNOWN_CHANNEL_TYPE = "{channel_type}"
_PLACEHOLDERS = (UNKNOWN_ID, UNKNOWN_TICKET_ID, UNKNOWN_PROFILE_ID)


@dataclass(frozen=True, slots=True)
class Step:
    """A request and the condition under which it is sent."""

    when: str
    request: TrengoRequest


def render_event(
    value: bytes, settings: Settings, transformation: Transformation | None = None
) -> str:
    """The dry-run report for one event's bytes; with a transformation, the event before and
    after it and the report of each event it returned."""
    document = decode(value)
    if isinstance(document, Rejection):
        return _rejected(document, settings)
    if transformation is None:
        return _render_document(document, settings)
    lines = [f"before transformation: {json.dumps(document, ensure_ascii=False)}"]
    events = transformation.run(copy.deepcopy(document))
    if isinstance(events, Skip):
        return "\n".join([*lines, _skipped(events)])
    if isinstance(events, Rejection):
        return "\n".join([*lines, _rejected(events, settings)])
    for number, event in enumerate(events, start=1):
        lines.append(
            f"after transformation ({number} of {len(events)}):"
            f" {json.dumps(event, ensure_ascii=False)}"
        )
        lines.append(_render_document(event, settings))
    return "\n".join(lines)


def _render_document(document: dict[str, Any], settings: Settings) -> str:
    skip = EventFilter.from_settings(settings)(document)
    if skip is not None:
        return _skipped(skip)
    message = validate(document, accept_groups=settings.destination.enableProfiles)
    if isinstance(message, Rejection):
        return _rejected(message, settings)
    plan = plan_event(message, settings.destination, EventTemplates(settings.destination))
    if isinstance(plan, Rejection):
        return _rejected(plan, settings)
    lines = [f"event: {message.type} · messageId {message.messageId or '-'}", f"plan: {plan!r}"]
    lines.append("requests:")
    for number, step in enumerate(plan_steps(plan, settings.trengo), start=1):
        request = step.request
        lines.append(
            f"  {number}. {request.method} {_shown_url(settings.trengo.base_url, request)}"
        )
        if request.json is not None:
            lines.append(f"     body: {json.dumps(request.json, ensure_ascii=False)}")
        lines.append(f"     when: {step.when}")
    return "\n".join(lines)


def plan_steps(plan: Plan, trengo: TrengoConfig) -> list[Step]:
    """The requests a plan may cause, in order, each with its condition."""
    if isinstance(plan, TicketPlan):
        return _ticket_steps(plan)
    if isinstance(plan, GroupPlan):
        return _group_steps(plan)
    return [*_identify_steps(plan, trengo.email_find_or_create), *_custom_field_steps(plan)]


def _lookup_steps(contact: ContactRef, if_none: str = "") -> list[Step]:
    if isinstance(contact, KnownContact):
        return []
    return [
        Step(
            f"the contact id is not cached; only exact {contact.channel_identifier} matches "
            f"count{if_none}",
            endpoints.search_contacts(contact.identifier),
        )
    ]


def _contact_id(contact: ContactRef | None) -> ContactId:
    return contact.contact_id if isinstance(contact, KnownContact) else UNKNOWN_ID


def _ticket_steps(plan: TicketPlan) -> list[Step]:
    label_lookup = Step(
        "first label lookup of this process, or a label is missing from a list read more "
        f"than {REFRESH_INTERVAL_SECONDS:.0f} s ago; every page; a label still missing → "
        "dead letter, no ticket",
        endpoints.list_labels(1),
    )
    follow_ups = _follow_up_steps(plan)
    resumable = bool(follow_ups) and plan.event_key is not None
    ticket = Step(
        "always (no contact found → dead letter)"
        + ("; a retry of this event after it opened opens no other" if resumable else ""),
        endpoints.create_ticket(_contact_id(plan.contact), plan.ticket),
    )
    return [
        *([label_lookup] if plan.labels else []),
        *_lookup_steps(plan.contact),
        ticket,
        *follow_ups,
    ]


def _follow_up_steps(plan: TicketPlan) -> list[Step]:
    steps: list[Step] = []
    if plan.message is not None:
        audience = "an internal note" if plan.message.internal_note else "the customer gets it"
        steps.append(
            Step(
                f"after the ticket opened ({audience})",
                endpoints.post_message(UNKNOWN_TICKET_ID, plan.message),
            )
        )
    for name in plan.labels:  # the config keeps each name once
        label_id = f"{{label_id of '{name}'}}"
        steps.append(
            Step(
                f"after the ticket opened (label '{name}')",
                endpoints.attach_label(UNKNOWN_TICKET_ID, label_id),
            )
        )
    return steps


def _group_steps(plan: GroupPlan) -> list[Step]:
    profile = plan.profile
    return [
        *_lookup_steps(plan.contact, "; none → dead letter (a group never creates a contact)"),
        Step(
            f"the profile id of group {profile.key} is not cached; every page; only profiles "
            f"whose custom field {profile.key_field_id} is exactly {profile.key!r} count; "
            "several → dead letter",
            endpoints.search_profiles(profile.key),
        ),
        *(
            [
                Step(
                    "the search by key confirmed none (its term may not match field values): "
                    "by name, confirmed the same way",
                    endpoints.search_profiles(profile.name),
                )
            ]
            if profile.name != profile.key
            else []
        ),
        Step(
            "the search found no such profile, and no earlier attempt created it",
            endpoints.create_profile(profile.name),
        ),
        Step(
            "the profile was just created (a retry keys the profile it created)",
            endpoints.set_profile_custom_field(
                UNKNOWN_PROFILE_ID, profile.key_field_id, profile.key
            ),
        ),
        Step(
            "the name differs from the one Trengo has (or was last sent)",
            endpoints.rename_profile(UNKNOWN_PROFILE_ID, profile.name),
        ),
        Step(
            "the contact is not attached already (by this process, or listed by the search); "
            f"type: channel {profile.channel_id}'s type, from GET /channels (once per process)",
            endpoints.attach_contact_to_profile(
                UNKNOWN_PROFILE_ID, _contact_id(plan.contact), UNKNOWN_CHANNEL_TYPE
            ),
        ),
    ]


def _identify_steps(plan: IdentifyPlan, email_find_or_create: bool) -> list[Step]:
    contact = plan.contact
    update = Step(
        "the name differs from the one Trengo has (or was last sent)",
        endpoints.update_contact(_contact_id(contact), plan.update),
    )
    if isinstance(contact, KnownContact) or plan.create is None:
        return [update]
    create = endpoints.create_contact(plan.create)
    if contact is None:
        return [Step("always (enableDedup is off)", create)]
    if contact.channel_identifier == "email" and email_find_or_create:
        return [
            Step("the contact id is not cached (Trengo returns an existing email contact)", create),
            update,
        ]
    return [
        *_lookup_steps(contact),
        Step("the search found no exact match", create),
        Step(f"the search found the contact; {update.when}", update.request),
    ]


def _custom_field_steps(plan: IdentifyPlan) -> list[Step]:
    contact_id = _contact_id(plan.contact)
    return [
        Step(
            "the value differs from the last one sent to this contact",
            endpoints.set_contact_custom_field(contact_id, field),
        )
        for field in plan.custom_fields
    ]


def _shown_url(base_url: str, request: TrengoRequest) -> str:
    shown = endpoints.url(base_url, request)
    for placeholder in _PLACEHOLDERS:
        shown = shown.replace(quote(placeholder, safe=""), placeholder)
    return shown


_SKIP_STAGE = {"transformation": "transform"}


def _skipped(skip: Skip) -> str:
    return (
        f"skipped at {_SKIP_STAGE.get(skip.reason, 'filter')} ({skip.reason}): {skip.detail}\n"
        "→ committed without a call, counted in trengo_processor_skipped_total\nrequests: none"
    )


def _rejected(rejection: Rejection, settings: Settings) -> str:
    return (
        f"rejected at {rejection.stage}: {rejection.reason}\n"
        f"→ dead-letter topic {settings.kafka.dead_letter_topic}\nrequests: none"
    )
