"""Channels, contacts and tickets of the Trengo sandbox, their search, and their JSON shapes.

Pure data: no HTTP, no clock (timestamps are passed in). The shapes follow
``reference/trengo-api.md`` §3 to §8: bare objects for create/update, the Laravel *simple*
pagination envelope for lists, 64-bit ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject = dict[str, JSONValue]

ChannelType = Literal["EMAIL", "SMS", "VOIP", "WA_BUSINESS"]
PHONE_CHANNEL_TYPES: frozenset[str] = frozenset({"SMS", "VOIP", "WA_BUSINESS"})

# Real Trengo ids exceed 2**32 (reference fixture 90002431001): clients must use 64-bit ints.
FIRST_CONTACT_ID = 90_002_431_001
FIRST_TICKET_ID = 70_245_508_001
PAGE_SIZE = 25
AGENCY_ID = 1249
DEFAULT_AVATAR = "https://app.trengo.com/img/defaultpic.png"
_AVATAR_COLORS = ("#f44336", "#e91e63", "#9c27b0", "#3f51b5", "#009688", "#ff9800")
_PHONE_TERM = re.compile(r"\+?[\d\s().\-]+")
_NON_DIGITS = re.compile(r"\D")
# Contacts per search chunk: a chunk whose joined text lacks the term is skipped at C speed.
_SEARCH_CHUNK_SIZE = 512


def digits_of(text: str) -> str:
    """Only the digits of ``text`` (``"+98 303-11"`` -> ``"9830311"``)."""
    return _NON_DIGITS.sub("", text)


def laravel_timestamp(wall_seconds: float) -> str:
    """A Unix time as Trengo writes it: ``2021-12-06T13:02:53.000000Z``."""
    return datetime.fromtimestamp(int(wall_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


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
        """The channel as it appears in ``contact.channels[]`` and ``ticket.channel``."""
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


@dataclass(slots=True)
class Contact:
    """One contact on one channel (Trengo keeps a separate contact per channel type)."""

    id: int
    channel: SandboxChannel
    identifier: str
    name: str | None
    created_at: str
    group_ids: tuple[int, ...] = ()
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
            "color": _AVATAR_COLORS[self.id % len(_AVATAR_COLORS)],
            "avatar": DEFAULT_AVATAR,
            "profile_image": None,
            "custom_field_data": None,
            "formatted_custom_field_data": {},
            "is_private": False,
            "profile": [],
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
class Ticket:
    """A ticket opened for a contact on a channel."""

    id: int
    contact_id: int
    channel: SandboxChannel
    subject: str | None
    created_at: str

    def to_json(self) -> JSONObject:
        """The bare ticket object returned by ``POST /tickets``."""
        return {
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
            "updated_at": self.created_at,
            "latest_message": None,
            "channel": self.channel.to_json(),
        }


class _ContactSearchIndex:
    """Contacts in id order, chunked, each chunk with its joined search text cached.

    A search scans the cached texts with ``in`` (C speed) and only checks the contacts of chunks
    that contain the term, so a miss over 100,000 contacts costs microseconds, not a Python loop.
    """

    def __init__(self) -> None:
        self._chunks: list[list[Contact]] = []
        self._texts: list[str | None] = []
        self._chunk_of_contact: dict[int, int] = {}

    def add(self, contact: Contact) -> None:
        if not self._chunks or len(self._chunks[-1]) == _SEARCH_CHUNK_SIZE:
            self._chunks.append([])
            self._texts.append(None)
        self._chunks[-1].append(contact)
        self._chunk_of_contact[contact.id] = len(self._chunks) - 1
        self._texts[-1] = None

    def changed(self, contact: Contact) -> None:
        self._texts[self._chunk_of_contact[contact.id]] = None

    def matches(self, term: str, term_digits: str) -> Iterator[Contact]:
        for chunk_no, chunk in enumerate(self._chunks):
            text = self._texts[chunk_no]
            if text is None:
                text = self._texts[chunk_no] = "".join(c.search_key for c in chunk)
            if term in text or (term_digits and term_digits in text):
                yield from (c for c in chunk if c.matches(term, term_digits))


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of search results and whether another page follows."""

    contacts: list[Contact]
    page: int
    has_more: bool


class TrengoData:
    """All contacts and tickets of the sandbox, on the channels configured at start."""

    def __init__(self, channels: tuple[SandboxChannel, ...]) -> None:
        self.channels: dict[int, SandboxChannel] = {channel.id: channel for channel in channels}
        self.contacts: dict[int, Contact] = {}
        self.tickets: dict[int, Ticket] = {}
        self._email_contacts: dict[tuple[int, str], Contact] = {}
        self._search_index = _ContactSearchIndex()

    def clear(self) -> None:
        """Forget every contact and ticket; ids start again from the first id."""
        self.contacts.clear()
        self.tickets.clear()
        self._email_contacts.clear()
        self._search_index = _ContactSearchIndex()

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

    def search(self, term: str, page: int) -> SearchPage:
        """Contacts on any channel matching ``term`` (see ``Contact.matches``), 25 per page."""
        term = term.strip().lower()
        term_digits = digits_of(term) if _PHONE_TERM.fullmatch(term) else ""
        skip = (page - 1) * PAGE_SIZE
        page_contacts: list[Contact] = []
        for seen, contact in enumerate(self._search_index.matches(term, term_digits)):
            if seen < skip:
                continue
            if len(page_contacts) == PAGE_SIZE:
                return SearchPage(page_contacts, page, has_more=True)
            page_contacts.append(contact)
        return SearchPage(page_contacts, page, has_more=False)


def simple_pagination_json(result: SearchPage, path: str, query_suffix: str) -> JSONObject:
    """Laravel's simple-paginate envelope: no ``last_page``/``total``, ``links.last`` null.

    ``query_suffix`` (e.g. ``"&term=x"``) is kept in the page links so following ``next`` keeps
    the search.
    """

    def page_url(page: int) -> str:
        return f"{path}?page={page}{query_suffix}"

    first_item = (result.page - 1) * PAGE_SIZE + 1
    has_items = bool(result.contacts)
    return {
        "data": [contact.to_json() for contact in result.contacts],
        "links": {
            "first": page_url(1),
            "last": None,
            "prev": page_url(result.page - 1) if result.page > 1 else None,
            "next": page_url(result.page + 1) if result.has_more else None,
        },
        "meta": {
            "current_page": result.page,
            "from": first_item if has_items else None,
            "path": path,
            "per_page": PAGE_SIZE,
            "to": first_item + len(result.contacts) - 1 if has_items else None,
        },
    }
