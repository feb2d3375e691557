"""``AccountCatalog``: the account's channels and custom fields, read from Trengo once per process.

Attaching a contact to a profile needs the type of the contact's channel (``EMAIL``,
``WA_BUSINESS``, ...), and ``channelIdentifier`` cannot tell it (``phone`` is WhatsApp, SMS or
voice): the catalog reads every page of ``GET /channels`` the first time a plan needs it. A
profile whose field values come only as ``custom_field_data`` (keyed by the field's title)
needs the key field's title: every page of ``GET /custom_fields``, also read once. Both
listings are kept for the life of the process (channels and fields are set up once, rarely
changed); ``check-config --online`` reads the same listings to check the config.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from processor.trengo import endpoints
from processor.trengo.client import JsonObject, TrengoClient, id_of
from processor.trengo.endpoints import TrengoRequest
from processor.trengo.errors import PermanentError


class _ReadOnce:
    """One listing of the account, read (every page) the first time it is asked for."""

    def __init__(self, client: TrengoClient, request_for: Callable[[int], TrengoRequest]) -> None:
        self._client = client
        self._request_for = request_for
        self._by_id: dict[str, JsonObject] | None = None
        self._loading = asyncio.Lock()

    async def get(self, object_id: object) -> JsonObject | None:
        """The listed object with this id (compared as text); None when there is none."""
        if self._by_id is None:
            async with self._loading:  # concurrent plans wait for one listing
                if self._by_id is None:
                    self._by_id = by_id(await self._client.every_page(self._request_for))
        return self._by_id.get(str(object_id))


class AccountCatalog:
    """Channel types and custom field titles by id; one per API token."""

    def __init__(self, client: TrengoClient) -> None:
        self._channels = _ReadOnce(client, endpoints.list_channels)
        self._custom_fields = _ReadOnce(client, endpoints.list_custom_fields)

    async def channel_type(self, channel_id: str) -> str:
        """The ``type`` of channel ``channel_id``; PermanentError when Trengo does not list it."""
        channel = await self._channels.get(channel_id)
        channel_type = channel.get("type") if channel is not None else None
        if not isinstance(channel_type, str) or not channel_type:
            raise PermanentError(f"channel {channel_id} not found in GET /channels (no type)")
        return channel_type

    async def custom_field_title(self, field_id: int) -> str | None:
        """The ``title`` of custom field ``field_id``; None when Trengo does not list it."""
        custom_field = await self._custom_fields.get(field_id)
        title = custom_field.get("title") if custom_field is not None else None
        return title if isinstance(title, str) else None


def by_id(objects: list[JsonObject]) -> dict[str, JsonObject]:
    """Listed objects by their id as text (the first one wins)."""
    indexed: dict[str, JsonObject] = {}
    for listed in objects:
        object_id = id_of(listed)
        if object_id is not None:
            indexed.setdefault(str(object_id), listed)
    return indexed
