"""The exact Trengo requests the processor sends, built without any I/O.

The client sends these, and ``render`` (the CLI's dry run) prints them, so what an operator
previews is byte for byte what goes out. Bodies follow RudderStack's destination: ``None``
values are dropped, an empty ticket subject is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from processor.pipeline.plan import CreateContact, CreateTicket, JsonScalar, UpdateContact

JsonBody = dict[str, JsonScalar]
ContactId = str | int

# Left unescaped in query values: allowed there by RFC 3986, and kept as they are by yarl.
_QUERY_SAFE = "/?:@!$'()*,"


@dataclass(frozen=True, slots=True)
class TrengoRequest:
    """One API call: ``operation`` is its metric label, ``path`` is below the base URL."""

    operation: str
    method: str
    path: str
    params: dict[str, str]
    json: JsonBody | None


def search_contacts(term: str, page: int = 1) -> TrengoRequest:
    """``GET /contacts?page=&term=``: Trengo's fuzzy search (filter the results yourself)."""
    return TrengoRequest(
        "search_contacts", "GET", "/contacts", {"page": str(page), "term": term}, None
    )


def create_contact(op: CreateContact) -> TrengoRequest:
    """``POST /channels/{channel_id}/contacts`` with ``{name, identifier, channel_id}``."""
    body = _without_none(
        {"name": op.name, "identifier": op.identifier, "channel_id": op.channel_id}
    )
    path = f"/channels/{_segment(op.channel_id)}/contacts"
    return TrengoRequest("create_contact", "POST", path, {}, body)


def update_contact(contact_id: ContactId, op: UpdateContact) -> TrengoRequest:
    """``PUT /contacts/{id}`` with ``{name}`` (empty when the name is None: skip the call)."""
    path = f"/contacts/{_segment(contact_id)}"
    return TrengoRequest("update_contact", "PUT", path, {}, _without_none({"name": op.name}))


def create_ticket(contact_id: ContactId, op: CreateTicket) -> TrengoRequest:
    """``POST /tickets`` with ``{contact_id, channel_id, subject}``."""
    body = _without_none(
        {"contact_id": contact_id, "channel_id": op.channel_id, "subject": op.subject}
    )
    return TrengoRequest("create_ticket", "POST", "/tickets", {}, body)


def url(base_url: str, request: TrengoRequest) -> str:
    """The full URL, query values percent-encoded (``+`` becomes ``%2B``, not a space).

    Characters a query may hold as they are (``@``, ``/``, ``:``, ...) stay readable, exactly as
    the aiohttp transport (yarl) would normalise them, so this is the URL that goes out.
    """
    query = "&".join(
        f"{quote(key, safe=_QUERY_SAFE)}={quote(value, safe=_QUERY_SAFE)}"
        for key, value in request.params.items()
    )
    return f"{base_url.rstrip('/')}{request.path}{'?' + query if query else ''}"


def _without_none(body: JsonBody) -> JsonBody:
    return {key: value for key, value in body.items() if value is not None}


def _segment(value: ContactId) -> str:
    return quote(str(value), safe="")
