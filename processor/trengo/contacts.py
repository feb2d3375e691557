"""Contact resolution helpers: the exact-match filter and the two caches that save API calls.

Trengo's ``GET /contacts?term=`` is a fuzzy, multi-field search: a term can hit another person
whose name or email merely contains it. ``exact_matches`` keeps only the contacts whose email
equals the identifier (case-insensitively), or whose phone has the same digits.

``ContactCache`` remembers which contact id an identifier resolved to, so a known contact costs
no search; ``SentNames`` remembers the last name sent to each contact, so an identify that
changes nothing costs no update; ``SentFields`` does the same for each custom field.

``with_cached_id`` is the cache-then-resolve step contacts and profiles share: write with the
cached id, and when Trengo says it no longer knows that id, forget it so the caller resolves
afresh.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from enum import Enum, auto
from typing import Final, Literal, TypeVar

from processor.metrics import CONTACT_CACHE_REQUESTS
from processor.pipeline.plan import ChannelIdentifier, JsonScalar
from processor.trengo.endpoints import ContactId, TrengoId
from processor.trengo.errors import PermanentError
from processor.trengo.expiring import Expiring

Contact = TypeVar("Contact", bound=Mapping[str, object])
Written = TypeVar("Written")
_NON_DIGITS = re.compile(r"\D")
_EMAIL_FIELDS = ("email", "identifier")
_PHONE_FIELDS = ("phone", "formatted_phone", "identifier")
# Looked up once: labels() costs more than counting.
_CACHE_HITS = CONTACT_CACHE_REQUESTS.labels(result="hit")
_CACHE_MISSES = CONTACT_CACHE_REQUESTS.labels(result="miss")


def normalized_identifier(identifier: JsonScalar, channel_identifier: ChannelIdentifier) -> str:
    """The form two identifiers are compared in: an email casefolded, a phone as its digits."""
    text = "" if identifier is None or isinstance(identifier, bool) else str(identifier)
    if channel_identifier == "email":
        return text.strip().casefold()
    return _NON_DIGITS.sub("", text)


def exact_matches(
    contacts: Iterable[Contact], identifier: JsonScalar, channel_identifier: ChannelIdentifier
) -> list[Contact]:
    """The contacts whose email (or phone) is exactly ``identifier``, in search order."""
    wanted = normalized_identifier(identifier, channel_identifier)
    if not wanted:
        return []
    fields = _EMAIL_FIELDS if channel_identifier == "email" else _PHONE_FIELDS
    return [
        contact
        for contact in contacts
        if any(_field_matches(contact.get(name), wanted, channel_identifier) for name in fields)
    ]


def on_channel(contacts: Iterable[Contact], channel_id: str) -> list[Contact]:
    """The contacts whose ``channels`` list includes ``channel_id``."""
    return [contact for contact in contacts if channel_id in _channel_ids(contact)]


def _field_matches(value: object, wanted: str, channel_identifier: ChannelIdentifier) -> bool:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return False
    return normalized_identifier(value, channel_identifier) == wanted


def _channel_ids(contact: Mapping[str, object]) -> set[str]:
    channels = contact.get("channels")
    if not isinstance(channels, list):
        return set()
    return {str(channel.get("id")) for channel in channels if isinstance(channel, dict)}


class _NotCached(Enum):
    NOT_CACHED = auto()


# What ``with_cached_id`` returns when it wrote nothing: a write's own result may be None.
NOT_CACHED: Final = _NotCached.NOT_CACHED
NotCached = Literal[_NotCached.NOT_CACHED]


async def with_cached_id(
    cached: TrengoId | None,
    write: Callable[[TrengoId], Awaitable[Written]],
    *,
    stale: Callable[[PermanentError], bool],
    forget: Callable[[TrengoId], None],
) -> Written | NotCached:
    """``write`` with the ``cached`` id; ``NOT_CACHED`` when there is none, or when the write's
    error says Trengo no longer knows the id (``stale``): then ``forget`` drops what is
    remembered of it and the caller resolves afresh. Any other error propagates."""
    if cached is None:
        return NOT_CACHED
    try:
        return await write(cached)
    except PermanentError as error:
        if not stale(error):
            raise
    forget(cached)
    return NOT_CACHED


ContactKey = tuple[str, str]


def contact_key(
    channel_id: str, identifier: JsonScalar, channel_identifier: ChannelIdentifier
) -> ContactKey:
    """The cache key of an identifier on a channel: (channel id, normalised identifier)."""
    return (str(channel_id), normalized_identifier(identifier, channel_identifier))


class ContactCache:
    """Contact ids by ``contact_key``: a bounded LRU whose entries also expire.

    ``size`` or ``ttl_seconds`` of zero turns caching off. Lookups count as hit or miss in
    ``contact_cache_requests_total``.
    """

    def __init__(
        self, size: int, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: Expiring[ContactKey, ContactId] = Expiring(size, ttl_seconds, clock=clock)

    def get(self, key: ContactKey) -> ContactId | None:
        """The cached contact id, or None."""
        contact_id = self._entries.get(key)
        (_CACHE_MISSES if contact_id is None else _CACHE_HITS).inc()
        return contact_id

    def put(self, key: ContactKey, contact_id: ContactId) -> None:
        """Remember that the identifier of ``key`` resolved to ``contact_id``."""
        if key[1]:
            self._entries.put(key, contact_id)

    def invalidate_contact(self, contact_id: ContactId) -> None:
        """Forget every identifier that resolved to ``contact_id`` (Trengo no longer has it)."""
        self._entries.forget_values(lambda cached: str(cached) == str(contact_id))

    def __len__(self) -> int:
        return len(self._entries)


class SentNames:
    """The last name sent to each contact (bounded, expiring), to skip updates that change
    nothing. Expiry bounds how long a rename made in Trengo's UI can hide a re-send."""

    def __init__(
        self, size: int, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._names: Expiring[str, str] = Expiring(size, ttl_seconds, clock=clock)

    def is_unchanged(self, contact_id: ContactId, name: str) -> bool:
        """True when ``name`` is the last name sent to this contact."""
        return self._names.get(str(contact_id)) == name

    def remember(self, contact_id: ContactId, name: str) -> None:
        """Record that the contact now has ``name``."""
        self._names.put(str(contact_id), name)

    def forget(self, contact_id: ContactId) -> None:
        """Drop what is known of the contact."""
        self._names.pop(str(contact_id))


class SentFields:
    """The last value sent to each (contact, custom field), bounded and expiring: a field whose
    value did not change costs no call. Size and TTL as for ``SentNames`` (0 turns it off)."""

    def __init__(
        self, size: int, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._values: Expiring[tuple[str, int], str] = Expiring(size, ttl_seconds, clock=clock)

    def is_unchanged(self, contact_id: ContactId, field_id: int, value: str) -> bool:
        """True when ``value`` is the last value sent to this contact's field."""
        return self._values.get((str(contact_id), field_id)) == value

    def remember(self, contact_id: ContactId, field_id: int, value: str) -> None:
        """Record that Trengo accepted ``value`` for this contact's field."""
        self._values.put((str(contact_id), field_id), value)
