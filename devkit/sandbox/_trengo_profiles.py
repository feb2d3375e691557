"""Profiles of the Trengo sandbox: companies that group contacts, with their own custom fields.

Pure data like ``_trengo_model``. The profile object follows the captured ``GET /profiles/{id}``
(reference/trengo-api.md §13): ``{id, name, abbr, color, created_at ("2022-06-26 18:20:20"),
user, notes, custom_fields, custom_field_values, contacts}``, plus the title-keyed
``custom_field_data`` contacts carry. What ``term`` matches is not known (§13); the sandbox
takes the narrow reading: a case-insensitive substring of the name only, never a field value,
so a client that finds profiles by their key must not rely on the search alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from devkit.sandbox._trengo_model import (
    AVATAR_COLORS,
    Contact,
    FieldValue,
    JSONObject,
    Page,
    SandboxCustomField,
    SearchIndex,
    custom_field_values_json,
    paginate,
)

FIRST_PROFILE_ID = 60_118_700_001


def profile_timestamp(wall_seconds: float) -> str:
    """A Unix time as the captured profile writes it: ``2022-06-26 18:20:20``."""
    return datetime.fromtimestamp(int(wall_seconds), UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(slots=True)
class Profile:
    """One profile: a name, profile custom field values, and the contacts attached to it."""

    id: int
    name: str
    created_at: str
    field_values: dict[int, FieldValue] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    search_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.refresh_search_key()

    def refresh_search_key(self) -> None:
        """Recompute the lower-cased text searched by ``term`` (the name only)."""
        self.search_key = self.name.lower() + "\x1e"

    def matches(self, term: str, term_digits: str) -> bool:
        """Substring match of a lower-cased term (profiles have no phone-digit matching)."""
        return term in self.search_key

    def attach_contact(self, contact: Contact) -> None:
        """Attach ``contact``; attaching it again changes nothing (assumed)."""
        if contact.id not in self.contacts:
            self.contacts[contact.id] = contact
            contact.profiles[self.id] = self

    def summary_json(self) -> JSONObject:
        """The short form listed in ``contact.profile[]`` (assumed shape)."""
        return {"id": self.id, "name": self.name}

    def to_json(self) -> JSONObject:
        """The profile object answered by every profile route (the captured shape)."""
        return {
            "id": self.id,
            "name": self.name,
            "abbr": self.name[:1].upper(),
            "color": AVATAR_COLORS[self.id % len(AVATAR_COLORS)],
            "created_at": self.created_at,
            "user": None,
            "notes": [],
            **custom_field_values_json("profile_id", self.id, self.field_values),
            "contacts": [contact.summary_json() for contact in self.contacts.values()],
        }


class ProfileBook:
    """Every profile of the sandbox, by id, with its search index."""

    def __init__(self) -> None:
        self.by_id: dict[int, Profile] = {}
        self._search_index = SearchIndex[Profile]()

    def clear(self) -> None:
        """Forget every profile; ids start again from the first id."""
        self.by_id.clear()
        self._search_index = SearchIndex[Profile]()

    def create(self, name: str, created_at: str) -> Profile:
        """A new profile without custom fields or contacts."""
        profile = Profile(FIRST_PROFILE_ID + len(self.by_id), name, created_at)
        self.by_id[profile.id] = profile
        self._search_index.add(profile)
        return profile

    def rename(self, profile: Profile, name: str) -> None:
        """Give ``profile`` a new name."""
        profile.name = name
        profile.refresh_search_key()
        self._search_index.changed(profile)

    def set_field(self, profile: Profile, custom_field: SandboxCustomField, value: str) -> None:
        """Set one profile custom field (replacing its value)."""
        profile.field_values[custom_field.id] = FieldValue(custom_field, value)

    def search(self, term: str, page: int) -> Page[Profile]:
        """Profiles whose name contains ``term``, 25 per page."""
        return paginate(self._search_index.matches(term.strip().lower()), page)
