"""Trengo calls RudderStack's own destination would make for the same events.

RudderStack's flow (docs/rudderstack-compatibility.md, "Delivery"): every
identify with dedup on and every mapped track searches the contact (``GET /contacts?term=``) and
then writes (create or update; ticket) — two calls, with no cache and no skip of an unchanged
name. A ``trengoContactId`` externalId saves the search (one call); dedup off always creates
(one call). A track whose search finds nobody stops after the search (one call); an unmapped
track, another message type or an identify without identifier and dedup off costs nothing.

A track's search finds the contact when an earlier identify of the stream had its identifier
(RudderStack keeps per-user order, so the identify was delivered first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_CONTACT_ID_TYPE = "trengoContactId"


def rudderstack_calls(values: Iterable[bytes], destination: Mapping[str, Any]) -> int:
    """Total Trengo calls RudderStack makes for these Kafka values, in this order."""
    known_identifiers: set[str] = set()
    return sum(_calls(value, destination, known_identifiers) for value in values)


def _calls(value: bytes, destination: Mapping[str, Any], known_identifiers: set[str]) -> int:
    try:
        document = json.loads(value)
    except ValueError:
        return 0
    if not isinstance(document, dict) or not destination.get("channelId"):
        return 0
    kind = document.get("type")
    kind = kind.lower() if isinstance(kind, str) else None
    identifier = _identifier(document, destination.get("channelIdentifier", "email"))
    contact_id = _external_id(document, _CONTACT_ID_TYPE)
    if kind == "identify":
        return _identify_calls(identifier, contact_id, destination, known_identifiers)
    if kind == "track" and _is_mapped(document.get("event"), destination):
        if contact_id is not None:
            return 1
        return 2 if identifier in known_identifiers else 1
    return 0


def _identify_calls(
    identifier: str | None,
    contact_id: object,
    destination: Mapping[str, Any],
    known_identifiers: set[str],
) -> int:
    dedup = bool(destination.get("enableDedup"))  # RudderStack: a missing key is off
    if dedup and contact_id is not None:
        return 1  # PUT to the given id
    if identifier is None:
        return 1 if dedup else 0  # dedup searches term=null, then fails the identifier check
    known_identifiers.add(identifier)
    return 2 if dedup else 1


def _is_mapped(event: object, destination: Mapping[str, Any]) -> bool:
    mappings: Sequence[Mapping[str, Any]] = destination.get("eventTemplateMap") or ()
    return isinstance(event, str) and any(mapping.get("from") == event for mapping in mappings)


def _identifier(document: Mapping[str, Any], channel_identifier: str) -> str | None:
    sources = (
        _mapping(document.get("traits")),
        _mapping(_mapping(document.get("context")).get("traits")),
        _mapping(document.get("properties")),
    )
    field = "email" if channel_identifier == "email" else "phone"
    for source in sources:
        found = source.get(field)
        if found not in (None, ""):
            return str(found)
    if field == "email":  # the generic mapping's last resort: the first externalId's id
        external_ids = _mapping(document.get("context")).get("externalId")
        if isinstance(external_ids, list) and external_ids:
            first_id = _mapping(external_ids[0]).get("id")
            return str(first_id) if first_id not in (None, "") else None
    return None


def _external_id(document: Mapping[str, Any], id_type: str) -> object:
    external_ids = _mapping(document.get("context")).get("externalId")
    for item in external_ids if isinstance(external_ids, list) else ():
        if _mapping(item).get("type") == id_type:
            return _mapping(item).get("id")
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
