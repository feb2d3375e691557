"""Plans: what the map stage decides and the delivery stage carries out.

A plan names Trengo operations without doing any I/O. The delivery stage resolves the contact
(from a known id, the contact-id cache, or a search filtered to exact matches), then performs the
write. Everything a plan holds is plain data, so ``render`` can print it and tests can compare it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChannelIdentifier = Literal["email", "phone"]
JsonScalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class KnownContact:
    """The contact id was given by a ``trengoContactId`` externalId: no search."""

    contact_id: str | int


@dataclass(frozen=True, slots=True)
class ResolveContact:
    """Find the contact whose email/phone equals ``identifier`` exactly."""

    identifier: str
    channel_identifier: ChannelIdentifier
    channel_id: str


@dataclass(frozen=True, slots=True)
class CreateContact:
    """``POST /channels/{channel_id}/contacts`` with ``{name, identifier, channel_id}``."""

    channel_id: str
    identifier: JsonScalar
    name: str | None


@dataclass(frozen=True, slots=True)
class UpdateContact:
    """``PUT /contacts/{id}`` with ``{name}``."""

    name: str | None


@dataclass(frozen=True, slots=True)
class SetCustomField:
    """``POST /contacts/{id}/custom_fields`` with ``{custom_field_id, value}`` (opt-in:
    ``destination.customFieldMap``); skipped when the value is the last one sent."""

    field_id: int
    value: str


@dataclass(frozen=True, slots=True)
class CreateTicket:
    """``POST /tickets`` with ``{contact_id, channel_id, subject?}``."""

    channel_id: str
    subject: str | None


@dataclass(frozen=True, slots=True)
class PostMessage:
    """``POST /tickets/{id}/messages`` with ``{message, internal_note}``: the ticket's first
    message (``internal_note`` False: the customer receives it) or an agent-only note."""

    text: str
    internal_note: bool


@dataclass(frozen=True, slots=True)
class ResolveProfile:
    """Find the Trengo Profile whose custom field ``key_field_id`` holds ``key`` (the group's
    id), or create it named ``name``; rename it when its name differs. ``channel_id`` is the
    contact's channel (its type goes with the attach call)."""

    key: str
    key_field_id: int
    name: str
    channel_id: str


ContactRef = KnownContact | ResolveContact


@dataclass(frozen=True, slots=True)
class IdentifyPlan:
    """Identify: update the found contact's name, or create it; then set its custom fields.

    ``contact`` is None when dedup is off (always create). ``create`` is None when the
    contact is known by id (nothing to create, only update).
    """

    contact: ContactRef | None
    update: UpdateContact
    create: CreateContact | None
    custom_fields: tuple[SetCustomField, ...] = ()


@dataclass(frozen=True, slots=True)
class TicketPlan:
    """Track: open a ticket for an existing contact (a track never creates a contact), then
    post its first message and attach its labels (by name; ids are looked up in Trengo).

    ``event_key`` (the event's messageId) lets a retry finish the follow-ups of a ticket that
    was already opened instead of opening a second one. ``fanned_out``: one of the events a
    transformation made of one record, whose offset commits only once all are done; its
    progress is kept after it finishes, so a redelivery of the record resumes every part
    instead of opening the finished parts' tickets again.
    """

    event: str
    contact: ContactRef
    ticket: CreateTicket
    message: PostMessage | None = None
    labels: tuple[str, ...] = ()
    event_key: str | None = None
    fanned_out: bool = False


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """Group (opt-in: ``destination.enableProfiles``): attach the user's existing contact to
    the group's Profile (a group never creates a contact)."""

    group_id: str
    contact: ContactRef
    profile: ResolveProfile


Plan = IdentifyPlan | TicketPlan | GroupPlan


@dataclass(frozen=True, slots=True)
class Rejection:
    """The event cannot be delivered: dead-letter it with this reason."""

    reason: str
    stage: Literal["decode", "validate", "transform", "map"]


SkipReason = Literal[
    "ignore_types", "integrations", "consent", "message_type", "unmapped_event", "transformation"
]


@dataclass(frozen=True, slots=True)
class Skip:
    """The event is not for Trengo (the filter stage): commit it, count it by reason."""

    reason: SkipReason
    detail: str
