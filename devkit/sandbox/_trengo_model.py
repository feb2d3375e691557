"""Channels, custom fields, labels, contacts and tickets of the Trengo sandbox, and their JSON.

Pure data: no HTTP, no clock (timestamps are passed in). The shapes follow
``reference/trengo-api.md`` §3 to §8: bare objects for create/update, the Laravel *simple*
pagination envelope for lists, 64-bit ids; §13 for custom field values (``custom_field_data``
keyed by the field's title, the ids in ``custom_field_values`` and ``custom_fields[].pivot``),
``GET /custom_fields`` and ``GET /channels``. Shapes no source establishes are marked (assumed):
the label object, the message object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject = dict[str, JSONValue]

ChannelType = Literal["EMAIL", "SMS", "VOIP", "WA_BUSINESS"]
PHONE_CHANNEL_TYPES: frozenset[str] = frozenset({"SMS", "VOIP", "WA_BUSINESS"})
CustomFieldType = Literal["CONTACT", "PROFILE", "TICKET"]

# Real Trengo ids exceed 2**32 (reference fixture 90002431001): clients must use 64-bit ints.
FIRST_CONTACT_ID = 90_002_431_001
FIRST_TICKET_ID = 70_245_508_001
FIRST_MESSAGE_ID = 81_356_200_001
FIRST_LABEL_ID = 3001
PAGE_SIZE = 25
AGENCY_ID = 1249
DEFAULT_AVATAR = "https://app.trengo.com/img/defaultpic.png"
AVATAR_COLORS = ("#f44336", "#e91e63", "#9c27b0", "#3f51b5", "#009688", "#ff9800")
_LABEL_COLORS = ("#4caf50", "#2196f3", "#ff9800", "#e91e63", "#9c27b0", "#607d8b")
_PHONE_TERM = re.compile(r"\+?[\d\s().\-]+")
_NON_DIGITS = re.compile(r"\D")
# Records per search chunk: a chunk whose joined text lacks the term is skipped at C speed.
_SEARCH_CHUNK_SIZE = 512


def digits_of(text: str) -> str:
    """Only the digits of ``text`` (``"+98 303-11"`` -> ``"9830311"``)."""
    return _NON_DIGITS.sub("", text)


def laravel_timestamp(wall_seconds: float) -> str:
    """A Unix time as Trengo writes it: ``2021-12-06T13:02:53.000000Z``."""
    return datetime.fromtimestamp(int(wall_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@dataclass(frozen=True, slots=True)
class FieldValue:
    """One custom field value of a contact or profile."""

    custom_field: SandboxCustomField
    value: str


def custom_field_values_json(
    owner_key: str, owner_id: int, values: dict[int, FieldValue]
) -> JSONObject:
    """The three forms Trengo gives field values in (§13): ``custom_field_data`` keyed by the
    field's title (null until a field is set), ``custom_field_values`` and ``custom_fields``
    with their ``pivot`` (``owner_key``: ``contact_id`` or ``profile_id``)."""
    return {
        "custom_field_data": {v.custom_field.title: v.value for v in values.values()} or None,
        "custom_field_values": [
            {
                "custom_field_id": v.custom_field.id,
                "field_name": v.custom_field.title,
                "value": v.value,
            }
            for v in values.values()
        ],
        "custom_fields": [
            v.custom_field.to_json()
            | {
                "pivot": {
                    owner_key: owner_id,
                    "custom_field_id": v.custom_field.id,
                    "value": v.value,
                }
            }
            for v in values.values()
        ],
    }


class SandboxChannel(BaseModel):
    """A channel configured at start; contacts and tickets live on one channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    type: ChannelType
    title: str
    address: str = ""

    @property
    def is_phone(self) -> bool:
        """True for SMS, VOIP and WhatsApp channels (identifier = phone number)."""
        return self.type in PHONE_CHANNEL_TYPES

    def to_json(self) -> JSONObject:
        """The channel as GET /channels, ``contact.channels[]`` and ``ticket.channel`` list it."""
        return {
            "id": self.id,
            "name": None,
            "title": self.title,
            "type": self.type,
            "status": "ACTIVE",
            "display_name": f"{self.title} ({self.address})" if self.address else self.title,
            "phone": self.address if self.is_phone else None,
            "emailChannel": None if self.is_phone else {"email": self.address},
            "users": [],
            "is_private": False,
        }


DEFAULT_CHANNELS: tuple[SandboxChannel, ...] = (
    SandboxChannel(id=650_577, type="EMAIL", title="Email", address="support@example.com"),
    SandboxChannel(id=650_578, type="WA_BUSINESS", title="WhatsApp", address="31850004119"),
)


class SandboxCustomField(BaseModel):
    """A custom field ("Extra Field") defined at start, for contacts or for profiles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = Field(ge=1)
    title: str = Field(min_length=1)
    type: CustomFieldType
    field_type: str = "TEXT"

    def to_json(self) -> JSONObject:
        """The field as ``GET /custom_fields`` lists it: ``type`` CONTACT/PROFILE/TICKET."""
        return {
            "id": self.id,
            "title": self.title,
            "type": self.type,
            "field_type": self.field_type,
        }


DEFAULT_CUSTOM_FIELDS: tuple[SandboxCustomField, ...] = (
    SandboxCustomField(id=1001, title="Plan", type="CONTACT"),
    SandboxCustomField(id=1002, title="Company", type="CONTACT"),
    SandboxCustomField(id=2001, title="External ID", type="PROFILE"),
    SandboxCustomField(id=3001, title="Order reference", type="TICKET"),
)
DEFAULT_LABELS: tuple[str, ...] = ("lead", "order", "vip", "support")


@dataclass(frozen=True, slots=True)
class Label:
    """A ticket label; the sandbox numbers the configured names from ``FIRST_LABEL_ID``."""

    id: int
    name: str
    color: str
    sort_order: int

    def to_json(self) -> JSONObject:
        """The label as ``GET /labels`` and ``ticket.labels[]`` show it (assumed shape)."""
        return {
            "id": self.id,
            "name": self.name,
            "color": self.color,
            "sort_order": self.sort_order,
        }


def labels_from_names(names: Iterable[str]) -> dict[int, Label]:
    """Labels by id for the configured names, in their order, ids from ``FIRST_LABEL_ID``."""
    labels = (
        Label(FIRST_LABEL_ID + n, name, _LABEL_COLORS[n % len(_LABEL_COLORS)], n + 1)
        for n, name in enumerate(names)
    )
    return {label.id: label for label in labels}


class LinkedProfile(Protocol):
    """A profile as a contact sees it: ``contact.profile[]`` lists these."""

    def summary_json(self) -> JSONObject:
        """The short form in ``contact.profile[]``."""
        ...


@dataclass(slots=True)
class Contact:
    """One contact on one channel (Trengo keeps a separate contact per channel type).

    ``field_values`` are its custom field values by field id (answered in the three forms of
    ``custom_field_values_json``). ``profiles`` are the profiles the contact is attached to.
    """

    id: int
    channel: SandboxChannel
    identifier: str
    name: str | None
    created_at: str
    group_ids: tuple[int, ...] = ()
    field_values: dict[int, FieldValue] = field(default_factory=dict)
    profiles: dict[int, LinkedProfile] = field(default_factory=dict)
    search_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.refresh_search_key()

    @property
    def email(self) -> str | None:
        """The email address, for email-channel contacts."""
        return None if self.channel.is_phone else self.identifier

    @property
    def phone(self) -> str | None:
        """The phone number, for phone-channel contacts."""
        return self.identifier if self.channel.is_phone else None

    def refresh_search_key(self) -> None:
        """Recompute the lower-cased text searched by ``term`` (call after a rename)."""
        phone = self.phone or ""
        parts = (self.name or "", self.email or "", phone, digits_of(phone))
        self.search_key = "\x1f".join(parts).lower() + "\x1e"

    def matches(self, term: str, term_digits: str) -> bool:
        """Substring match of a lower-cased term, or of its digits within the phone's digits."""
        if term in self.search_key:
            return True
        return bool(term_digits) and self.phone is not None and term_digits in digits_of(self.phone)

    def set_custom_field(self, custom_field: SandboxCustomField, value: str) -> None:
        """Set one custom field (replacing its value)."""
        self.field_values[custom_field.id] = FieldValue(custom_field, value)

    def summary_json(self) -> JSONObject:
        """The short form listed in ``profile.contacts[]`` (assumed shape)."""
        return {"id": self.id, "name": self.name, "identifier": self.identifier}

    def to_json(self, *, with_channels: bool = True, with_details: bool = False) -> JSONObject:
        """The contact object; create responses omit ``channels``, detail views add notes/groups."""
        label = self.name or self.identifier
        contact: JSONObject = {
            "id": self.id,
            "name": self.name,
            "full_name": self.name,
            "email": self.email,
            "phone": self.phone,
            "formatted_phone": self.phone,
            "identifier": self.identifier,
            "is_phone": self.channel.is_phone,
            "display_name": f"{self.name} ({self.identifier})" if self.name else self.identifier,
            "abbr": label[:1].upper(),
            "color": AVATAR_COLORS[self.id % len(AVATAR_COLORS)],
            "avatar": DEFAULT_AVATAR,
            "profile_image": None,
            **custom_field_values_json("contact_id", self.id, self.field_values),
            "is_private": False,
            "profile": [profile.summary_json() for profile in self.profiles.values()],
            "pivot": None,
            "created_at": self.created_at,
        }
        if with_channels:
            contact["channels"] = [self.channel.to_json()]
        if with_details:
            contact["notes"] = []
            contact["groups"] = [{"id": gid, "name": f"Group {gid}"} for gid in self.group_ids]
        return contact


@dataclass(frozen=True, slots=True)
class TicketMessage:
    """A message posted into a ticket: to the customer, or an agent-only internal note."""

    id: int
    ticket_id: int
    message: str
    internal_note: bool
    created_at: str

    def to_json(self) -> JSONObject:
        """The message object answered by ``POST /tickets/{id}/messages`` (assumed shape)."""
        return {
            "id": self.id,
            "ticket_id": self.ticket_id,
            "message": self.message,
            "type": "NOTE" if self.internal_note else "OUTBOUND",
            "internal_note": self.internal_note,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class Ticket:
    """A ticket opened for a contact on a channel, with its labels and posted messages."""

    id: int
    contact_id: int
    channel: SandboxChannel
    subject: str | None
    created_at: str
    updated_at: str = field(init=False)
    labels: list[Label] = field(default_factory=list)
    messages: list[TicketMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.updated_at = self.created_at

    def add_label(self, label: Label, labelled_at: str) -> None:
        """Attach ``label``; attaching it again changes nothing."""
        if label not in self.labels:
            self.labels.append(label)
            self.updated_at = labelled_at

    def to_json(self, *, with_messages: bool = False) -> JSONObject:
        """The bare ticket object returned by ``POST /tickets``; the snapshot adds ``messages``."""
        ticket: JSONObject = {
            "id": self.id,
            "agency_id": AGENCY_ID,
            "contact_id": self.contact_id,
            "channel_id": self.channel.id,
            "subject": self.subject,
            "status": "OPEN",
            "user_id": None,
            "team_id": None,
            "assigned_at": None,
            "assigned_by": None,
            "closed_at": None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "latest_message": self.messages[-1].created_at if self.messages else None,
            "channel": self.channel.to_json(),
            "labels": [label.to_json() for label in self.labels],
        }
        if with_messages:
            ticket["messages"] = [message.to_json() for message in self.messages]
        return ticket


class _Searchable(Protocol):
    """What ``SearchIndex`` needs of a record."""

    @property
    def id(self) -> int: ...

    @property
    def search_key(self) -> str: ...

    def matches(self, term: str, term_digits: str) -> bool: ...


class JSONRecord(Protocol):
    """Anything that lists as a JSON object (contacts, profiles, labels, custom fields)."""

    def to_json(self) -> JSONObject:
        """The object as the API shows it."""
        ...


_SearchableT = TypeVar("_SearchableT", bound=_Searchable)
JSONRecordT = TypeVar("JSONRecordT", bound=JSONRecord)
_ItemT = TypeVar("_ItemT")


class SearchIndex(Generic[_SearchableT]):
    """Records in id order, chunked, each chunk with its joined ``search_key`` text cached.

    A search scans the cached texts with ``in`` (C speed) and only checks the records of chunks
    that contain the term, so a miss over 100,000 records costs microseconds, not a Python loop.
    """

    def __init__(self) -> None:
        self._chunks: list[list[_SearchableT]] = []
        self._texts: list[str | None] = []
        self._chunk_of_record: dict[int, int] = {}

    def add(self, record: _SearchableT) -> None:
        """Index a new record (after every record added before it)."""
        if not self._chunks or len(self._chunks[-1]) == _SEARCH_CHUNK_SIZE:
            self._chunks.append([])
            self._texts.append(None)
        self._chunks[-1].append(record)
        self._chunk_of_record[record.id] = len(self._chunks) - 1
        self._texts[-1] = None

    def changed(self, record: _SearchableT) -> None:
        """Forget the cached text around a record whose search key changed."""
        self._texts[self._chunk_of_record[record.id]] = None

    def matches(self, term: str, term_digits: str = "") -> Iterator[_SearchableT]:
        """The records whose ``matches(term, term_digits)`` is true, in id order."""
        for chunk_no, chunk in enumerate(self._chunks):
            text = self._texts[chunk_no]
            if text is None:
                text = self._texts[chunk_no] = "".join(r.search_key for r in chunk)
            if term in text or (term_digits and term_digits in text):
                yield from (r for r in chunk if r.matches(term, term_digits))


@dataclass(frozen=True, slots=True)
class Page(Generic[_ItemT]):
    """One page of a listing and whether another page follows."""

    items: list[_ItemT]
    number: int
    has_more: bool


def paginate(records: Iterable[_ItemT], page: int) -> Page[_ItemT]:
    """Page ``page`` (1-based) of ``records``, ``PAGE_SIZE`` per page."""
    skip = (page - 1) * PAGE_SIZE
    taken = list(islice(records, skip, skip + PAGE_SIZE + 1))
    return Page(taken[:PAGE_SIZE], page, has_more=len(taken) > PAGE_SIZE)


class TrengoData:
    """The sandbox's account: contacts, tickets and messages, on the start options' setup.

    Channels, custom fields and labels come from the start options and never change.
    """

    def __init__(
        self,
        channels: Iterable[SandboxChannel],
        custom_fields: Iterable[SandboxCustomField] = DEFAULT_CUSTOM_FIELDS,
        label_names: Iterable[str] = DEFAULT_LABELS,
    ) -> None:
        self.channels: dict[int, SandboxChannel] = {channel.id: channel for channel in channels}
        self.custom_fields: dict[int, SandboxCustomField] = {f.id: f for f in custom_fields}
        self.contact_fields = self._fields_of_type("CONTACT")
        self.profile_fields = self._fields_of_type("PROFILE")
        self.labels = labels_from_names(label_names)
        self.contacts: dict[int, Contact] = {}
        self.tickets: dict[int, Ticket] = {}
        self.message_count = 0
        self._email_contacts: dict[tuple[int, str], Contact] = {}
        self._search_index = SearchIndex[Contact]()

    def _fields_of_type(self, field_type: CustomFieldType) -> dict[int, SandboxCustomField]:
        return {fid: f for fid, f in self.custom_fields.items() if f.type == field_type}

    def clear(self) -> None:
        """Forget every contact, ticket and message; ids start again from the first id."""
        self.contacts.clear()
        self.tickets.clear()
        self.message_count = 0
        self._email_contacts.clear()
        self._search_index = SearchIndex[Contact]()

    def find_or_create_contact(
        self, channel: SandboxChannel, identifier: str, name: str | None, created_at: str
    ) -> tuple[Contact, bool]:
        """Email channels return the contact with that address if any; phone channels duplicate.

        Returns the contact and whether it was created.
        """
        email_key = (channel.id, identifier.lower())
        if not channel.is_phone and (existing := self._email_contacts.get(email_key)):
            return existing, False
        if channel.is_phone and not identifier.startswith("+"):
            identifier = "+" + identifier  # Trengo prefixes stored phone numbers with "+"
        contact_id = FIRST_CONTACT_ID + len(self.contacts)
        contact = Contact(contact_id, channel, identifier, name, created_at)
        self.contacts[contact_id] = contact
        self._search_index.add(contact)
        if not channel.is_phone:
            self._email_contacts[email_key] = contact
        return contact, True

    def update_contact(
        self, contact: Contact, name: str, group_ids: tuple[int, ...] | None
    ) -> None:
        """Rename a contact and, when given, replace its groups."""
        contact.name = name
        if group_ids is not None:
            contact.group_ids = group_ids
        contact.refresh_search_key()
        self._search_index.changed(contact)

    def create_ticket(
        self, channel: SandboxChannel, contact: Contact, subject: str | None, created_at: str
    ) -> Ticket:
        """Open a new ticket for ``contact`` on ``channel``."""
        ticket = Ticket(
            FIRST_TICKET_ID + len(self.tickets), contact.id, channel, subject, created_at
        )
        self.tickets[ticket.id] = ticket
        return ticket

    def post_message(
        self, ticket: Ticket, text: str, *, internal_note: bool, posted_at: str
    ) -> TicketMessage:
        """Add a message (or an internal note) to ``ticket``."""
        message = TicketMessage(
            FIRST_MESSAGE_ID + self.message_count, ticket.id, text, internal_note, posted_at
        )
        self.message_count += 1
        ticket.messages.append(message)
        ticket.updated_at = posted_at
        return message

    def search(self, term: str, page: int) -> Page[Contact]:
        """Contacts on any channel matching ``term`` (see ``Contact.matches``), 25 per page."""
        term = term.strip().lower()
        term_digits = digits_of(term) if _PHONE_TERM.fullmatch(term) else ""
        return paginate(self._search_index.matches(term, term_digits), page)


def simple_pagination_json(result: Page[JSONRecordT], path: str, query_suffix: str) -> JSONObject:
    """Laravel's simple-paginate envelope: no ``last_page``/``total``, ``links.last`` null.

    ``query_suffix`` (e.g. ``"&term=x"``) is kept in the page links so following ``next`` keeps
    the search.
    """

    def page_url(page: int) -> str:
        return f"{path}?page={page}{query_suffix}"

    first_item = (result.number - 1) * PAGE_SIZE + 1
    has_items = bool(result.items)
    return {
        "data": [item.to_json() for item in result.items],
        "links": {
            "first": page_url(1),
            "last": None,
            "prev": page_url(result.number - 1) if result.number > 1 else None,
            "next": page_url(result.number + 1) if result.has_more else None,
        },
        "meta": {
            "current_page": result.number,
            "from": first_item if has_items else None,
            "path": path,
            "per_page": PAGE_SIZE,
            "to": first_item + len(result.items) - 1 if has_items else None,
        },
    }
