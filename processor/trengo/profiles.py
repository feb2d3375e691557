"""``ProfileDirectory``: find (or create) a group's Trengo Profile and attach a contact to it.

A group's profile is the one whose custom field ``key_field_id`` holds the group id (the key).
Finding it, cheapest first:

1. The profile-id cache (key → id): no call.
2. ``GET /profiles?term=<key>`` (every page), kept to the profiles whose key field equals the
   key exactly. No public source says whether ``term`` matches custom field values at all, so
   when that finds none: ``GET /profiles?term=<name>`` (every page), confirmed the same way.
   One → it; several → PermanentError naming the ids.
3. None → ``POST /profiles {name}`` then ``POST /profiles/{id}/custom_fields {key}``. A profile
   created but not keyed yet (the second call failed) is remembered, so the retry keys that one
   instead of creating another.

A profile's key is read where Trengo puts field values (README: The Trengo sandbox):
``custom_field_values[].custom_field_id``, else ``custom_fields[].pivot``, else
``custom_field_data`` (keyed by the field's title in real answers; by its id, just in case).

Then ``PUT /profiles/{id} {name}`` only when the name differs from the one Trengo reported (or
was last sent), and ``POST /profiles/{id}/contacts {contact_id, type}`` (``type``: the
channel's type, as every public client sends it) only when the contact is not known to be
attached (attached by this process, or listed in the search result's ``contacts``).

A cached profile id that Trengo no longer knows (404) is dropped and the profile found afresh,
once. Concurrent groups with the same key run one at a time, so they cannot both create it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from processor.pipeline.plan import ResolveProfile
from processor.trengo import endpoints
from processor.trengo.catalog import AccountCatalog
from processor.trengo.client import JsonObject, TrengoClient, created, id_of
from processor.trengo.contacts import NOT_CACHED, SentNames, with_cached_id
from processor.trengo.endpoints import ContactId, TrengoId
from processor.trengo.errors import PermanentError
from processor.trengo.expiring import RESUMABLE_SIZE, RESUMABLE_TTL_SECONDS, Expiring
from processor.trengo.locks import KeyedLocks

ProfileKey = tuple[int, str]  # (key field id, key)
_NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class _Found:
    """A profile as the search or the create answer showed it."""

    profile_id: TrengoId
    reported_name: object = None  # None: Trengo did not say (ask the memory of sent names)
    attached_contact_ids: frozenset[str] = frozenset()


class ProfileDirectory:
    """Profiles by key, their names and attached contacts; one per API token."""

    def __init__(
        self,
        client: TrengoClient,
        size: int,
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._catalog = AccountCatalog(client)
        self._profile_ids: Expiring[ProfileKey, TrengoId] = Expiring(size, ttl_seconds, clock=clock)
        self._sent_names = SentNames(size, ttl_seconds, clock=clock)
        self._attached: Expiring[tuple[str, str], bool] = Expiring(size, ttl_seconds, clock=clock)
        self._unkeyed: Expiring[ProfileKey, _Found] = Expiring(
            RESUMABLE_SIZE, RESUMABLE_TTL_SECONDS, clock=clock
        )
        self._resolving: KeyedLocks[ProfileKey] = KeyedLocks()

    async def attach(self, profile: ResolveProfile, contact_id: ContactId) -> None:
        """Attach the contact to the group's profile (found, or created and keyed).

        Raises PermanentError for an ambiguous key.
        """
        key = (profile.key_field_id, profile.key)

        async with self._resolving.hold(key):
            done = await with_cached_id(
                self._profile_ids.get(key),
                lambda cached: self._sync(_Found(cached), profile, contact_id),
                stale=_not_found,
                forget=lambda cached: self._forget(key, cached),
            )
            if done is NOT_CACHED:
                found = await self._find_or_create(profile, key)
                await self._sync(found, profile, contact_id)

    async def _sync(self, found: _Found, profile: ResolveProfile, contact_id: ContactId) -> None:
        """Rename the profile if its name differs, attach the contact unless it is attached."""
        profile_id = found.profile_id
        if not self._has_name(found, profile.name):
            await self._client.send(endpoints.rename_profile(profile_id, profile.name))
        self._sent_names.remember(profile_id, profile.name)
        pair = (str(profile_id), str(contact_id))
        if not (self._attached.get(pair) or pair[1] in found.attached_contact_ids):
            channel_type = await self._catalog.channel_type(profile.channel_id)
            attach = endpoints.attach_contact_to_profile(profile_id, contact_id, channel_type)
            await self._client.send(attach)
        self._attached.put(pair, True)

    def _has_name(self, found: _Found, name: str) -> bool:
        if found.reported_name is not None:  # Trengo's own word beats our memory
            return found.reported_name == name
        return self._sent_names.is_unchanged(found.profile_id, name)

    async def _find_or_create(self, profile: ResolveProfile, key: ProfileKey) -> _Found:
        found = await self._search(profile)
        if found is None:
            found = await self._create_keyed(profile, key)
        self._profile_ids.put(key, found.profile_id)
        return found

    async def _search(self, profile: ResolveProfile) -> _Found | None:
        """The one profile keyed ``profile.key`` (searched by key, then by name); None: none."""
        found = await self._search_by(profile.key, profile)
        if found is None and profile.name != profile.key:
            found = await self._search_by(profile.name, profile)
        return found

    async def _search_by(self, term: str, profile: ResolveProfile) -> _Found | None:
        """Of the profiles ``term`` finds, the one whose key field is ``profile.key``."""
        results = await self._client.every_page(lambda page: endpoints.search_profiles(term, page))
        title = None
        if any(_needs_title(result, profile.key_field_id) for result in results):
            title = await self._catalog.custom_field_title(profile.key_field_id)
        matches = [
            (match, profile_id)
            for match in results
            if _key_of(match, profile.key_field_id, title) == profile.key
            and (profile_id := id_of(match)) is not None
        ]
        if len(matches) > 1:
            listed = ", ".join(str(profile_id) for _, profile_id in matches)
            raise PermanentError(
                f"ambiguous profile: {len(matches)} profiles have custom field "
                f"{profile.key_field_id} = {profile.key}: ids {listed}"
            )
        if not matches:
            return None
        match, profile_id = matches[0]
        return _Found(profile_id, match.get("name"), _contact_ids(match.get("contacts")))

    async def _create_keyed(self, profile: ResolveProfile, key: ProfileKey) -> _Found:
        """Create the profile (or take the one a failed attempt created) and key it."""
        found = self._unkeyed.get(key)
        if found is None:
            answer = await self._client.send(endpoints.create_profile(profile.name))
            profile_id, created_profile = created(answer, "create_profile")
            found = _Found(profile_id, created_profile.get("name"))
            self._unkeyed.put(key, found)
        keyed = endpoints.set_profile_custom_field(
            found.profile_id, profile.key_field_id, profile.key
        )
        try:
            await self._client.send(keyed)
        except PermanentError as error:
            if error.status == _NOT_FOUND:  # deleted in Trengo: a new attempt creates another
                self._unkeyed.pop(key)
            raise
        self._unkeyed.pop(key)
        return found

    def _forget(self, key: ProfileKey, profile_id: TrengoId) -> None:
        self._profile_ids.pop(key)
        self._sent_names.forget(profile_id)


def _not_found(error: PermanentError) -> bool:
    return error.status == _NOT_FOUND


def _key_of(profile: JsonObject, field_id: int, title: str | None) -> str | None:
    """The profile's value of custom field ``field_id`` (titled ``title``), as text; None when
    it has none. Where Trengo puts it, most precise first: ``custom_field_values`` (by id),
    ``custom_fields[].pivot`` (by id), ``custom_field_data`` (by id, else by title)."""
    for entry in _list_of_objects(profile.get("custom_field_values")):
        if _same_id(entry.get("custom_field_id"), field_id):
            return _text(entry.get("value"))
    for custom_field in _list_of_objects(profile.get("custom_fields")):
        pivot = custom_field.get("pivot")
        if isinstance(pivot, dict) and _same_id(pivot.get("custom_field_id"), field_id):
            return _text(pivot.get("value"))
    values = profile.get("custom_field_data")
    if not isinstance(values, dict):
        return None
    if str(field_id) in values:
        return _text(values[str(field_id)])
    return _text(values.get(title)) if title is not None else None


def _needs_title(profile: JsonObject, field_id: int) -> bool:
    """True when only the title-keyed ``custom_field_data`` can tell the profile's key."""
    values = profile.get("custom_field_data")
    return (
        isinstance(values, dict)
        and str(field_id) not in values
        and not _list_of_objects(profile.get("custom_field_values"))
        and not _list_of_objects(profile.get("custom_fields"))
    )


def _list_of_objects(value: object) -> list[JsonObject]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _same_id(value: object, field_id: int) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, int | str) and str(value) == str(field_id)
    )


def _text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _contact_ids(contacts: object) -> frozenset[str]:
    """The ids in a profile's ``contacts`` list."""
    if not isinstance(contacts, list):
        return frozenset()
    return frozenset(
        str(contact_id)
        for contact in contacts
        if isinstance(contact, dict) and (contact_id := id_of(contact)) is not None
    )
