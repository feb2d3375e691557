"""Profiles of the Trengo sandbox: companies that group contacts, with their own custom fields.

Pure data like ``_trengo_model``. The profile object and its search are (assumed): no source
shows them, so the sandbox fixes ``{id, name, custom_field_data, contacts[{id, name,
identifier}], created_at, updated_at}`` and a ``term`` that matches, as a case-insensitive
substring, the name or any custom field value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processor.sandbox._trengo_model import (
    Contact,
    JSONObject,
    Page,
    SandboxCustomField,
    SearchIndex,
    custom_field_data_json,
    paginate,
)

FIRST_PROFILE_ID = 60_118_700_001


@dataclass(slots=True)
class Profile:
    """One profile: a name, profile custom field values, and the contacts attached to it."""

    id: int
    name: str
    created_at: str
    updated_at: str = field(init=False)
    custom_field_data: dict[str, str] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    search_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.updated_at = self.created_at
        self.refresh_search_key()

    def refresh_search_key(self) -> None:
        """Recompute the lower-cased text searched by ``term`` (name and field values)."""
        self.search_key = "\x1f".join((self.name, *self.custom_field_data.values())).lower()
        self.search_key += "\x1e"

    def matches(self, term: str, term_digits: str) -> bool:
        """Substring match of a lower-cased term (profiles have no phone-digit matching)."""
        return term in self.search_key

    def attach_contact(self, contact: Contact, attached_at: str) -> None:
        """Attach ``contact``; attaching it again changes nothing (assumed)."""
        if contact.id not in self.contacts:
            self.contacts[contact.id] = contact
            contact.profiles[self.id] = self
            self.updated_at = attached_at

    def summary_json(self) -> JSONObject:
        """The short form listed in ``contact.profile[]`` (assumed shape)."""
        return {"id": self.id, "name": self.name}

    def to_json(self) -> JSONObject:
        """The profile object answered by every profile route (assumed shape)."""
        return {
            "id": self.id,
            "name": self.name,
            "custom_field_data": custom_field_data_json(self.custom_field_data),
            "contacts": [contact.summary_json() for contact in self.contacts.values()],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
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

    def rename(self, profile: Profile, name: str, renamed_at: str) -> None:
        """Give ``profile`` a new name."""
        profile.name = name
        self._changed(profile, renamed_at)

    def set_field(
        self, profile: Profile, custom_field: SandboxCustomField, value: str, set_at: str
    ) -> None:
        """Set one profile custom field (replacing its value)."""
        profile.custom_field_data[str(custom_field.id)] = value
        self._changed(profile, set_at)

    def search(self, term: str, page: int) -> Page[Profile]:
        """Profiles whose name or a custom field value contains ``term``, 25 per page."""
        return paginate(self._search_index.matches(term.strip().lower()), page)

    def _changed(self, profile: Profile, changed_at: str) -> None:
        profile.updated_at = changed_at
        profile.refresh_search_key()
        self._search_index.changed(profile)
