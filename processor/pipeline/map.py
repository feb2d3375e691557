"""Map stage: a validated message and the destination config → a Plan, or a rejection.

Pure: no I/O, no clock. It follows RudderStack's Trengo transformer
(docs/rudderstack-compatibility.md) with the Trengo calls left as plan steps; finding the contact
(cache, exact-match search, URL encoding) is the delivery stage's job. Rejection texts are
RudderStack's for the same conditions.

Field resolution: a value is the first one present (a non-empty string or a
non-zero number; other JSON types are skipped) along its path list:

* email: ``traits.email``, ``context.traits.email``, ``properties.email``, then the ``id`` of
  the first ``context.externalId`` item (RudderStack's generic mapping, which serves
  warehouse/rETL sources) — except when that item is a ``trengoChannelId`` or
  ``trengoContactId``, whose ids are never an email (RudderStack uses them anyway: fixed).
* phone: ``traits.phone``, ``context.traits.phone``, ``properties.phone``.
* name: ``traits.name``, ``context.traits.name``, else first and last name from
  ``firstName|firstname|first_name`` and ``lastName|lastname|last_name`` in traits then
  ``context.traits``. A missing part is left out ("John", not RudderStack's "John null");
  with no name at all the name is None and left out of the request bodies.
* ``trengoChannelId`` / ``trengoContactId``: the ``id`` of the first externalId of that type.

Deliberate differences from RudderStack besides those above: the search term is never
``null`` — an identify that would search or create without an identifier, and a track without
an identifier or a contact id, are rejected before any call; a track never creates a contact;
a track without ``properties`` still renders its subject; a missing ``event`` never matches a
mapping named ``undefined``; an externalId id that is neither text nor an integer is rejected.

Additions RudderStack does not have, each off unless configured (with none configured the
plans are exactly the ones above):

* Custom fields (``customFieldMap``): an identify also sets, per entry, the contact custom
  field ``fieldId`` to ``traits.<trait>``, else ``context.traits.<trait>`` — the first that is
  non-empty text, a number (0 too) or a boolean, written as JavaScript's ``String()`` writes it
  (true → ``true``, 3.0 → ``3``). An object, a list or no value leaves that field out.
* Ticket follow-ups (``eventTemplateMap[].message``, ``.messageType``, ``.labels``): a track's
  ticket gets a first message rendered from ``message`` with the subject's variables, on every
  channel type (a subject only on email, as in RudderStack); an internal note unless
  ``messageType`` is ``message``; none when it renders empty; a render failure rejects the
  event. The labels pass through by name. A ticket with follow-ups carries the event's
  ``messageId`` so a retry finishes them instead of opening a second ticket.
* Profiles (``enableProfiles``): a group attaches the user's existing contact to the Profile
  keyed by ``groupId`` (required) in the custom field ``profileKeyFieldId``, named
  ``traits.name`` or else the groupId. The contact is the ``trengoContactId`` externalId, else
  the email/phone in ``context.traits`` only: a group's ``traits`` describe the group, not the
  user. Without either the group is rejected; a group never creates a contact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from processor.config import DestinationConfig, TemplateMapping
from processor.events import BaseMessage, Group, Identify, Message, Track
from processor.pipeline.plan import (
    ContactRef,
    CreateContact,
    CreateTicket,
    GroupPlan,
    IdentifyPlan,
    KnownContact,
    Plan,
    PostMessage,
    Rejection,
    ResolveContact,
    ResolveProfile,
    SetCustomField,
    TicketPlan,
    UpdateContact,
)
from processor.pipeline.templates import EventTemplates, TemplateRenderError, js_string

TRENGO_CHANNEL_ID = "trengoChannelId"
TRENGO_CONTACT_ID = "trengoContactId"
_FIRST_NAME_KEYS = ("firstName", "firstname", "first_name")
_LAST_NAME_KEYS = ("lastName", "lastname", "last_name")
_MAX_VALUE_SHOWN = 40
_MAX_ID_DIGITS = 19  # Trengo's ids are 64-bit integers
_ID_DIGITS = re.compile(f"[0-9]{{1,{_MAX_ID_DIGITS}}}")
_MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
_MAX_PHONE_DIGITS = 20  # E.164 allows 15; leaves room for extensions
_MAX_PHONE_TEXT = 64  # digits with spaces, dashes, brackets

FieldValue = str | int | float


@dataclass(frozen=True, slots=True)
class _ResolvedFields:
    identifier: FieldValue | None
    name: str | None  # only identifies use it
    channel_id: str
    contact_id: str | int | None


def plan_event(
    message: Message | Group, destination: DestinationConfig, templates: EventTemplates
) -> Plan | Rejection:
    """The Trengo operations for one identify, track or (profiles on) group message."""
    fields = _resolve_fields(message, destination)
    if isinstance(fields, Rejection):
        return fields
    if isinstance(message, Identify):
        return _plan_identify(message, fields, destination)
    if isinstance(message, Group):
        return _plan_group(message, fields, destination)
    return _plan_track(message, fields, destination, templates)


def _plan_identify(
    message: Identify, fields: _ResolvedFields, destination: DestinationConfig
) -> Plan | Rejection:
    update = UpdateContact(name=fields.name)
    custom_fields = _custom_fields(message, destination)
    if destination.enableDedup and fields.contact_id is not None:
        known = KnownContact(fields.contact_id)
        return IdentifyPlan(known, update, create=None, custom_fields=custom_fields)
    if fields.identifier is None:
        channel_identifier = destination.channelIdentifier
        return _reject(f"Mandatory field for Channel-Identifier :{channel_identifier} not present")
    create = CreateContact(
        channel_id=fields.channel_id, identifier=fields.identifier, name=fields.name
    )
    contact = (
        _search_for(fields.identifier, fields, destination) if destination.enableDedup else None
    )
    return IdentifyPlan(contact, update, create, custom_fields)


def _custom_fields(message: Identify, destination: DestinationConfig) -> tuple[SetCustomField, ...]:
    trait_sources = _sources(message, with_properties=False)
    values = (
        (mapping.fieldId, _custom_field_value(trait_sources, mapping.trait))
        for mapping in destination.customFieldMap
    )
    return tuple(SetCustomField(field_id, value) for field_id, value in values if value is not None)


def _custom_field_value(sources: Iterable[Mapping[str, Any]], trait: str) -> str | None:
    """The first text (non-empty), number or boolean value of the trait, as JavaScript's
    ``String()`` writes it; objects and lists are not values here."""
    for source in sources:
        value = source.get(trait)
        if isinstance(value, bool | int | float) or (isinstance(value, str) and value):
            return js_string(value)
    return None


def _plan_track(
    message: Track,
    fields: _ResolvedFields,
    destination: DestinationConfig,
    templates: EventTemplates,
) -> Plan | Rejection:
    mapping = _mapping_for(message.event, destination)
    if isinstance(mapping, Rejection):
        return mapping
    event = mapping.from_
    contact = _existing_contact(fields, destination)
    if contact is None:
        channel_identifier = destination.channelIdentifier
        return _reject(
            f"No {channel_identifier} or {TRENGO_CONTACT_ID} present for track event {event}, "
            "aborting event"
        )
    subject = _subject(message, event, destination, templates)
    if isinstance(subject, Rejection):
        return subject
    first_message = _first_message(message, mapping, templates)
    if isinstance(first_message, Rejection):
        return first_message
    has_follow_ups = first_message is not None or bool(mapping.labels)
    return TicketPlan(
        event=event,
        contact=contact,
        ticket=CreateTicket(channel_id=fields.channel_id, subject=subject),
        message=first_message,
        labels=mapping.labels,
        # Only a ticket with follow-ups must be recognised when its event is retried.
        event_key=message.messageId if has_follow_ups else None,
    )


def _mapping_for(event: str | None, destination: DestinationConfig) -> TemplateMapping | Rejection:
    mapping = None if event is None else destination.template_for(event)
    if mapping is None:
        shown = "undefined" if event is None else event
        return _reject(f"{shown} is not present in Event-Map template keys, aborting event")
    return mapping


def _subject(
    message: Track, event: str, destination: DestinationConfig, templates: EventTemplates
) -> str | Rejection | None:
    """Only email tickets have a subject (as in RudderStack)."""
    if destination.channelIdentifier != "email":
        return None
    try:
        return templates.render(event, message.properties)
    except TemplateRenderError:
        return _reject(f"Error occurred in parsing event template for {event}")


def _first_message(
    message: Track, mapping: TemplateMapping, templates: EventTemplates
) -> PostMessage | Rejection | None:
    """The opt-in first message, for every channel type; an empty one is not sent."""
    event = mapping.from_
    try:
        text = templates.render_message(event, message.properties)
    except TemplateRenderError:
        return _reject(f"Error occurred in parsing message template for {event}")
    if not text:
        return None
    return PostMessage(text=text, internal_note=mapping.messageType == "note")


def _plan_group(
    message: Group, fields: _ResolvedFields, destination: DestinationConfig
) -> Plan | Rejection:
    key_field_id = destination.profileKeyFieldId
    if not destination.enableProfiles or key_field_id is None:
        return _reject("Event type group is not supported")
    group_id = message.groupId
    if group_id is None or not group_id.strip():
        return _reject("No groupId present for group event, aborting event")
    contact = _existing_contact(fields, destination)
    if contact is None:
        channel_identifier = destination.channelIdentifier
        return _reject(
            f"No {channel_identifier} in context.traits or {TRENGO_CONTACT_ID} present for "
            f"group event {group_id}, aborting event"
        )
    profile = ResolveProfile(
        key=group_id,
        key_field_id=key_field_id,
        name=_profile_name(message, group_id),
        channel_id=destination.channelId,
    )
    return GroupPlan(group_id=group_id, contact=contact, profile=profile)


def _profile_name(message: Group, group_id: str) -> str:
    """``traits.name`` (the group's own traits), else the groupId."""
    name = _first_present((message.traits or {},), ("name",))
    named = js_string(name).strip() if name is not None else ""
    return named or group_id


def _existing_contact(fields: _ResolvedFields, destination: DestinationConfig) -> ContactRef | None:
    """The contact a track or group refers to; neither ever creates one."""
    if fields.contact_id is not None:
        return KnownContact(fields.contact_id)
    if fields.identifier is None:
        return None
    return _search_for(fields.identifier, fields, destination)


def _search_for(
    identifier: FieldValue, fields: _ResolvedFields, destination: DestinationConfig
) -> ResolveContact:
    return ResolveContact(
        identifier=js_string(identifier),
        channel_identifier=destination.channelIdentifier,
        channel_id=fields.channel_id,
    )


def _resolve_fields(
    message: Message | Group, destination: DestinationConfig
) -> _ResolvedFields | Rejection:
    channel_override = _external_id(message, TRENGO_CHANNEL_ID)
    if isinstance(channel_override, Rejection):
        return channel_override
    contact_id = _external_id(message, TRENGO_CONTACT_ID)
    if isinstance(contact_id, Rejection):
        return contact_id
    identifier = _checked_identifier(_identifier(message, destination), destination)
    if isinstance(identifier, Rejection):
        return identifier
    return _ResolvedFields(
        identifier=identifier,
        name=_contact_name(message) if isinstance(message, Identify) else None,
        channel_id=destination.channelId if channel_override is None else str(channel_override),
        contact_id=contact_id,
    )


def _external_id(message: BaseMessage, id_type: str) -> str | int | Rejection | None:
    """The ``id`` of the first externalId of this type; a falsy id counts as absent (as in JS).

    It becomes a URL path segment, so it must be a Trengo id: a positive integer, as digits.
    """
    found = next((item for item in message.external_ids if item.type == id_type), None)
    if found is None or found.id in (None, "", 0):
        return None
    if _is_trengo_id(found.id):
        return found.id
    shown = json.dumps(found.id)[:_MAX_VALUE_SHOWN]
    return _reject(
        f"{id_type} id must be a positive integer (at most {_MAX_ID_DIGITS} digits), got {shown}"
    )


def _is_trengo_id(value: object) -> TypeGuard[str | int]:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    digits = str(value) if isinstance(value, int) else value
    return _ID_DIGITS.fullmatch(digits) is not None and int(digits) > 0


def _checked_identifier(
    identifier: FieldValue | None, destination: DestinationConfig
) -> FieldValue | Rejection | None:
    """An email or phone Trengo could hold: longer ones are rejected before any call."""
    if identifier is None:
        return None
    text = js_string(identifier)
    if destination.channelIdentifier == "email":
        too_long = len(text) > _MAX_EMAIL_LENGTH
        limit = f"{_MAX_EMAIL_LENGTH} characters"
    else:
        too_long = sum(c.isdigit() for c in text) > _MAX_PHONE_DIGITS or len(text) > _MAX_PHONE_TEXT
        limit = f"{_MAX_PHONE_DIGITS} digits ({_MAX_PHONE_TEXT} characters)"
    if too_long:
        return _reject(
            f"{destination.channelIdentifier} is longer than Trengo accepts (at most {limit}), "
            "aborting event"
        )
    return identifier


def _identifier(message: Message | Group, destination: DestinationConfig) -> FieldValue | None:
    if isinstance(message, Group):
        # A group's traits describe the group: the user's email or phone is in context.traits.
        return _first_present((message.context_traits,), (destination.channelIdentifier,))
    return _email(message) if destination.channelIdentifier == "email" else _phone(message)


def _email(message: BaseMessage) -> FieldValue | None:
    email = _first_present(_sources(message, with_properties=True), ("email",))
    if email is not None or not message.external_ids:
        return email
    first = message.external_ids[0]
    is_trengo_id = first.type in (TRENGO_CHANNEL_ID, TRENGO_CONTACT_ID)
    return first.id if not is_trengo_id and _present(first.id) else None


def _phone(message: BaseMessage) -> FieldValue | None:
    return _first_present(_sources(message, with_properties=True), ("phone",))


def _contact_name(message: BaseMessage) -> str | None:
    trait_sources = _sources(message, with_properties=False)
    full_name = _first_present(trait_sources, ("name",))
    if full_name is not None:
        return js_string(full_name)
    parts = (_first_present(trait_sources, keys) for keys in (_FIRST_NAME_KEYS, _LAST_NAME_KEYS))
    return " ".join(js_string(part) for part in parts if part is not None) or None


def _sources(message: BaseMessage, *, with_properties: bool) -> tuple[Mapping[str, Any], ...]:
    """Where traits live, in RudderStack's order of precedence."""
    sources: tuple[Mapping[str, Any], ...] = (message.traits or {}, message.context_traits)
    return (*sources, message.properties or {}) if with_properties else sources


def _first_present(sources: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> FieldValue | None:
    for source in sources:
        for key in keys:
            value = source.get(key)
            if _present(value):
                return value
    return None


def _present(value: object) -> TypeGuard[FieldValue]:
    """A non-empty string or a non-zero number (JavaScript-truthy text or number)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int | float) and value != 0
    )


def _reject(reason: str) -> Rejection:
    return Rejection(reason=reason, stage="map")
