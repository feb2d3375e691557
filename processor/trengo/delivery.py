"""Deliver stage: carry out one Plan with as few Trengo calls as it takes.

Finding the contact, cheapest first:

1. A ``KnownContact`` id (a ``trengoContactId`` externalId): no call.
2. The contact-id cache, keyed by (channel, normalised identifier): no call.
3. Identify on an email channel with ``trengo.email_find_or_create`` (the default):
   ``POST /channels/{id}/contacts``, which for an email is Trengo's find-or-create
   (docs/trengo-api.md). It returns the existing contact or a new one, so a new contact costs
   one call instead of search + create, and an existing one costs the same as search (then an
   update only if Trengo's name differs).
4. Otherwise ``GET /contacts?term=`` filtered to exact matches (emails case-insensitively,
   phones by their digits); several exact matches narrow to the one on the plan's channel.
   One → use it; none → create it (identify) or fail (track, group: neither creates a
   contact); still several → the event is dead-lettered naming the ids.

Then, per plan type:

* Identify without dedup (``enableDedup: false``): always a create, as RudderStack does; with a
  known or resolved contact: ``PUT /contacts/{id}`` unless Trengo already has the name (as the
  search or create response reported it) or it equals the last name this process sent to that
  contact (or last saw in a search); then one ``POST /contacts/{id}/custom_fields`` per custom
  field whose value differs from the last one Trengo accepted for that contact and field.
* Track: ``POST /tickets``. With a message or labels (``followups``): label ids looked up
  before the ticket opens, then one call for the message and one per label; a retry of the
  same event continues with the follow-ups not yet done. Without them: the ticket call only.
* Group: the profile found, created or renamed as needed (``profiles``), then the contact
  attached unless it is known to be attached already.

A cached id can be stale (the contact was deleted or merged in Trengo): a 404 on the write,
or a 422 naming the contact id ("The selected contact id is invalid." on ``POST /tickets``),
drops it from the cache and the contact is resolved afresh, once per plan. Such an answer for
an id that was just resolved, or given in the event, is permanent: the retry cannot loop.

Concurrent plans for the same identifier resolve one at a time, so two identifies of one new
phone contact cannot both create it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from processor.config import TrengoConfig
from processor.metrics import UPDATES_SKIPPED
from processor.pipeline.plan import (
    ContactRef,
    GroupPlan,
    IdentifyPlan,
    KnownContact,
    Plan,
    ResolveContact,
    TicketPlan,
    UpdateContact,
)
from processor.trengo import endpoints
from processor.trengo.client import TrengoClient, created, id_of
from processor.trengo.contacts import (
    NOT_CACHED,
    ContactCache,
    ContactKey,
    NotCached,
    SentFields,
    SentNames,
    contact_key,
    exact_matches,
    on_channel,
    with_cached_id,
)
from processor.trengo.endpoints import ContactId, TrengoId
from processor.trengo.errors import PermanentError
from processor.trengo.followups import TicketFollowUps
from processor.trengo.labels import LabelDirectory
from processor.trengo.locks import KeyedLocks
from processor.trengo.profiles import ProfileDirectory

T = TypeVar("T")

# Searched by the destination probe while halted: any answer but 401/403 proves the token works.
PROBE_TERM = "trengo-processor-probe"
_NOT_FOUND = 404
_UNPROCESSABLE = 422
# Laravel's validation text for a contact id it does not know: "The selected contact id is
# invalid." (and the field name ``contact_id`` in ``errors``).
_NAMES_CONTACT_ID = re.compile(r"contact[ _]id", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Reported:
    """The name Trengo reported for a contact in a search or create response."""

    name: object


class PlanExecutor:
    """Executes plans against Trengo; one per API token, shared by all delivery workers."""

    def __init__(
        self,
        client: TrengoClient,
        config: TrengoConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._email_find_or_create = config.email_find_or_create
        size, ttl = config.contact_cache_size, config.contact_cache_ttl_seconds
        self._contact_ids = ContactCache(size, ttl, clock=clock)
        self._sent_names = SentNames(size, ttl, clock=clock)
        self._sent_fields = SentFields(size, ttl, clock=clock)
        self._profiles = ProfileDirectory(client, size, ttl, clock=clock)
        self._follow_ups = TicketFollowUps(client, LabelDirectory(client, clock=clock), clock=clock)
        self._resolving: KeyedLocks[ContactKey] = KeyedLocks()

    async def execute(self, plan: Plan) -> None:
        """Carry out the plan; raises TransientError, PermanentError or DestinationDown."""
        if isinstance(plan, TicketPlan):
            if plan.message is None and not plan.labels:
                await self._open_ticket(plan)
            else:
                await self._follow_ups.deliver(plan, lambda: self._open_ticket(plan))
        elif isinstance(plan, GroupPlan):
            await self._group(plan)
        else:
            await self._identify(plan)

    async def probe(self) -> None:
        """One cheap authenticated call, to learn whether the token works again."""
        await self._client.send(endpoints.search_contacts(PROBE_TERM))

    async def _identify(self, plan: IdentifyPlan) -> None:
        async def update(contact_id: ContactId) -> None:
            await self._update(contact_id, plan.update)
            await self._set_fields(plan, contact_id)

        contact = plan.contact
        if contact is None:  # dedup off: always create, as RudderStack does
            await self._set_fields(plan, await self._create(plan))
        elif isinstance(contact, KnownContact):
            await update(contact.contact_id)
        else:
            key = _key(contact)
            async with self._resolving.hold(key):
                if await self._with_cached_id(key, update) is NOT_CACHED:
                    resolved = await self._identify_uncached(plan, contact, key)
                    await self._set_fields(plan, resolved)

    async def _identify_uncached(
        self, plan: IdentifyPlan, contact: ResolveContact, key: ContactKey
    ) -> ContactId:
        if contact.channel_identifier == "email" and self._email_find_or_create:
            return await self._create(plan, key)
        found = await self._search(contact)
        if found is None:
            return await self._create(plan, key)
        contact_id, reported = found
        self._contact_ids.put(key, contact_id)
        await self._update(contact_id, plan.update, reported)
        return contact_id

    async def _set_fields(self, plan: IdentifyPlan, contact_id: ContactId) -> None:
        """Send the custom fields whose value changed."""
        for field in plan.custom_fields:
            if not self._sent_fields.is_unchanged(contact_id, field.field_id, field.value):
                await self._client.send(endpoints.set_contact_custom_field(contact_id, field))
                self._sent_fields.remember(contact_id, field.field_id, field.value)

    async def _open_ticket(self, plan: TicketPlan) -> TrengoId | None:
        """Open the plan's ticket; its id, if Trengo gave one."""

        async def open_ticket(contact_id: ContactId) -> TrengoId | None:
            return id_of(await self._client.send(endpoints.create_ticket(contact_id, plan.ticket)))

        return await self._for_existing_contact(plan.contact, open_ticket, "track event")

    async def _group(self, plan: GroupPlan) -> None:
        async def attach(contact_id: ContactId) -> None:
            await self._profiles.attach(plan.profile, contact_id)

        event = f"group event for group {plan.group_id}"
        await self._for_existing_contact(plan.contact, attach, event)

    async def _for_existing_contact(
        self, contact: ContactRef, write: Callable[[ContactId], Awaitable[T]], event: str
    ) -> T:
        """``write`` for a contact that must exist already (``event`` names it if not)."""
        if isinstance(contact, KnownContact):
            return await write(contact.contact_id)
        key = _key(contact)
        async with self._resolving.hold(key):
            done = await self._with_cached_id(key, write)
            if done is not NOT_CACHED:
                return done
            found = await self._search(contact)
            if found is None:
                term = contact.identifier
                raise PermanentError(f"No contact found for term:{term} {event} failed")
            contact_id, _ = found
            self._contact_ids.put(key, contact_id)
        return await write(contact_id)

    async def _with_cached_id(
        self, key: ContactKey, write: Callable[[ContactId], Awaitable[T]]
    ) -> T | NotCached:
        """``write`` with the cached id; ``NOT_CACHED`` when there is none or Trengo no longer
        knows it."""
        cached = self._contact_ids.get(key)
        return await with_cached_id(cached, write, stale=_unknown_contact, forget=self._forget)

    def _forget(self, contact_id: ContactId) -> None:
        self._contact_ids.invalidate_contact(contact_id)
        self._sent_names.forget(contact_id)

    async def _search(self, contact: ResolveContact) -> tuple[ContactId, _Reported] | None:
        """The one contact whose identifier is exactly the plan's; None when there is none."""
        results = (await self._client.page(endpoints.search_contacts(contact.identifier))).items
        matches = exact_matches(results, contact.identifier, contact.channel_identifier)
        if len(matches) > 1:
            matches = on_channel(matches, contact.channel_id) or matches
        ids = [contact_id for match in matches if (contact_id := id_of(match)) is not None]
        if len(ids) > 1:
            listed = ", ".join(str(contact_id) for contact_id in ids)
            raise PermanentError(
                f"ambiguous contact: {len(ids)} exact matches for {contact.identifier}: "
                f"ids {listed}"
            )
        if not ids:
            return None
        name = matches[0].get("name")
        if isinstance(name, str):
            self._sent_names.remember(ids[0], name)  # what Trengo has is as good as sent
        return ids[0], _Reported(name)

    async def _create(self, plan: IdentifyPlan, key: ContactKey | None = None) -> ContactId:
        if plan.create is None:
            raise PermanentError("identify: no contact to update and nothing to create")
        answer = await self._client.send(endpoints.create_contact(plan.create))
        contact_id, contact = created(answer, "create_contact")
        if key is not None:
            self._contact_ids.put(key, contact_id)
        name = plan.update.name
        if name is None or contact.get("name") == name:
            self._remember(contact_id, name)
        else:  # Trengo returned an existing contact (email find-or-create) under another name
            await self._update(contact_id, plan.update, _Reported(contact.get("name")))
        return contact_id

    async def _update(
        self, contact_id: ContactId, op: UpdateContact, reported: _Reported | None = None
    ) -> None:
        name = op.name
        if name is None:
            UPDATES_SKIPPED.labels(reason="no_name").inc()
            return
        if self._has_name(contact_id, name, reported):
            UPDATES_SKIPPED.labels(reason="unchanged").inc()
        else:
            await self._client.send(endpoints.update_contact(contact_id, op))
        self._remember(contact_id, name)

    def _has_name(self, contact_id: ContactId, name: str, reported: _Reported | None) -> bool:
        if reported is not None:  # Trengo's own word beats our memory of what we sent
            return reported.name == name
        return self._sent_names.is_unchanged(contact_id, name)

    def _remember(self, contact_id: ContactId, name: str | None) -> None:
        if name is not None:
            self._sent_names.remember(contact_id, name)


def _unknown_contact(error: PermanentError) -> bool:
    """Trengo no longer knows the contact: 404, or a 422 that names the contact id."""
    if error.status == _NOT_FOUND:
        return True
    return error.status == _UNPROCESSABLE and bool(_NAMES_CONTACT_ID.search(error.reason))


def _key(contact: ResolveContact) -> ContactKey:
    return contact_key(contact.channel_id, contact.identifier, contact.channel_identifier)
