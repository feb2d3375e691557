"""``CountedCalls``: the client's calls made for one plan, counted.

Every call a plan causes goes through one ``CountedCalls``, whichever module makes it (contact
resolution, labels, profiles, ticket follow-ups), so ``DeliveryResult.calls`` is the true API
cost of the event. ``every_page`` follows a list answer's ``links.next``, one counted call a
page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from processor.pipeline.plan import (
    CreateContact,
    CreateTicket,
    PostMessage,
    SetCustomField,
    UpdateContact,
)
from processor.trengo.client import JsonObject, Page, TrengoClient
from processor.trengo.endpoints import ContactId, TrengoId
from processor.trengo.errors import PermanentError

# A bound on pagination (25 a page), so a server whose links.next never ends cannot loop us.
MAX_PAGES = 40


class CountedCalls:
    """The client's calls for one plan, counted (a failed call counts too)."""

    def __init__(self, client: TrengoClient) -> None:
        self._client = client
        self.count = 0

    async def search_contacts(self, term: str) -> list[JsonObject]:
        """``TrengoClient.search_contacts``, counted."""
        self.count += 1
        return await self._client.search_contacts(term)

    async def create_contact(self, op: CreateContact) -> JsonObject:
        """``TrengoClient.create_contact``, counted."""
        self.count += 1
        return await self._client.create_contact(op)

    async def update_contact(self, contact_id: ContactId, op: UpdateContact) -> None:
        """``TrengoClient.update_contact``, counted."""
        self.count += 1
        await self._client.update_contact(contact_id, op)

    async def set_contact_custom_field(self, contact_id: ContactId, op: SetCustomField) -> None:
        """``TrengoClient.set_contact_custom_field``, counted."""
        self.count += 1
        await self._client.set_contact_custom_field(contact_id, op)

    async def create_ticket(self, contact_id: ContactId, op: CreateTicket) -> JsonObject:
        """``TrengoClient.create_ticket``, counted."""
        self.count += 1
        return await self._client.create_ticket(contact_id, op)

    async def post_message(self, ticket_id: TrengoId, op: PostMessage) -> None:
        """``TrengoClient.post_message``, counted."""
        self.count += 1
        await self._client.post_message(ticket_id, op)

    async def list_labels(self, page: int) -> Page:
        """``TrengoClient.list_labels``, counted."""
        self.count += 1
        return await self._client.list_labels(page)

    async def list_channels(self, page: int) -> Page:
        """``TrengoClient.list_channels``, counted."""
        self.count += 1
        return await self._client.list_channels(page)

    async def list_custom_fields(self, page: int) -> Page:
        """``TrengoClient.list_custom_fields``, counted."""
        self.count += 1
        return await self._client.list_custom_fields(page)

    async def attach_label(self, ticket_id: TrengoId, label_id: TrengoId) -> None:
        """``TrengoClient.attach_label``, counted."""
        self.count += 1
        await self._client.attach_label(ticket_id, label_id)

    async def search_profiles(self, term: str, page: int) -> Page:
        """``TrengoClient.search_profiles``, counted."""
        self.count += 1
        return await self._client.search_profiles(term, page)

    async def create_profile(self, name: str) -> JsonObject:
        """``TrengoClient.create_profile``, counted."""
        self.count += 1
        return await self._client.create_profile(name)

    async def rename_profile(self, profile_id: TrengoId, name: str) -> None:
        """``TrengoClient.rename_profile``, counted."""
        self.count += 1
        await self._client.rename_profile(profile_id, name)

    async def set_profile_custom_field(
        self, profile_id: TrengoId, field_id: int, value: str
    ) -> None:
        """``TrengoClient.set_profile_custom_field``, counted."""
        self.count += 1
        await self._client.set_profile_custom_field(profile_id, field_id, value)

    async def attach_contact_to_profile(
        self, profile_id: TrengoId, contact_id: ContactId, channel_type: str
    ) -> None:
        """``TrengoClient.attach_contact_to_profile``, counted."""
        self.count += 1
        await self._client.attach_contact_to_profile(profile_id, contact_id, channel_type)


async def every_page(fetch: Callable[[int], Awaitable[Page]], listing: str) -> list[JsonObject]:
    """The objects of every page ``fetch(page)`` returns, from page 1 until there is no next.

    Raises PermanentError naming ``listing`` when there are more than ``MAX_PAGES`` pages.
    """
    objects: list[JsonObject] = []
    for number in range(1, MAX_PAGES + 1):
        page = await fetch(number)
        objects.extend(page.items)
        if not page.has_next or not page.items:
            return objects
    raise PermanentError(f"{listing}: more than {MAX_PAGES} pages of results")
