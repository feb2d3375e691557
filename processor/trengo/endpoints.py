"""The exact Trengo requests the processor sends, built without any I/O.

The client sends these, and ``render`` (the CLI's dry run) prints them, so what an operator
previews is byte for byte what goes out. Bodies follow RudderStack's destination: ``None``
values are dropped, an empty ticket subject is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from processor.pipeline.plan import (
    CreateContact,
    CreateTicket,
    JsonScalar,
    PostMessage,
    SetCustomField,
    UpdateContact,
)

JsonBody = dict[str, JsonScalar]
TrengoId = str | int  # an id Trengo gave (contact, ticket, profile, label)
ContactId = TrengoId

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


def set_contact_custom_field(contact_id: ContactId, op: SetCustomField) -> TrengoRequest:
    """``POST /contacts/{id}/custom_fields`` with ``{custom_field_id, value}``: one field."""
    path = f"/contacts/{_segment(contact_id)}/custom_fields"
    body: JsonBody = {"custom_field_id": op.field_id, "value": op.value}
    return TrengoRequest("set_contact_custom_field", "POST", path, {}, body)


def post_message(ticket_id: TrengoId, op: PostMessage) -> TrengoRequest:
    """``POST /tickets/{id}/messages`` with ``{message, internal_note}``."""
    path = f"/tickets/{_segment(ticket_id)}/messages"
    body: JsonBody = {"message": op.text, "internal_note": op.internal_note}
    return TrengoRequest("post_message", "POST", path, {}, body)


def list_labels(page: int = 1) -> TrengoRequest:
    """``GET /labels?page=``: one page (25) of the account's ticket labels."""
    return TrengoRequest("list_labels", "GET", "/labels", {"page": str(page)}, None)


def list_channels(page: int = 1) -> TrengoRequest:
    """``GET /channels?page=``: one page of the account's channels (``id``, ``type``, ...)."""
    return TrengoRequest("list_channels", "GET", "/channels", {"page": str(page)}, None)


def list_custom_fields(page: int = 1) -> TrengoRequest:
    """``GET /custom_fields?page=``: one page of the account's custom fields (``id``, ``title``,
    ``type``: CONTACT, PROFILE or TICKET)."""
    return TrengoRequest("list_custom_fields", "GET", "/custom_fields", {"page": str(page)}, None)


def attach_label(ticket_id: TrengoId, label_id: TrengoId) -> TrengoRequest:
    """``POST /tickets/{id}/labels`` with ``{label_id}``."""
    path = f"/tickets/{_segment(ticket_id)}/labels"
    return TrengoRequest("attach_label", "POST", path, {}, {"label_id": label_id})


def search_profiles(term: str, page: int = 1) -> TrengoRequest:
    """``GET /profiles?page=&term=``: a search (on names; on field values too is not known)."""
    params = {"page": str(page), "term": term}
    return TrengoRequest("search_profiles", "GET", "/profiles", params, None)


def create_profile(name: str) -> TrengoRequest:
    """``POST /profiles`` with ``{name}``."""
    return TrengoRequest("create_profile", "POST", "/profiles", {}, {"name": name})


def rename_profile(profile_id: TrengoId, name: str) -> TrengoRequest:
    """``PUT /profiles/{id}`` with ``{name}``."""
    path = f"/profiles/{_segment(profile_id)}"
    return TrengoRequest("rename_profile", "PUT", path, {}, {"name": name})


def set_profile_custom_field(profile_id: TrengoId, field_id: int, value: str) -> TrengoRequest:
    """``POST /profiles/{id}/custom_fields`` with ``{custom_field_id, value}``."""
    path = f"/profiles/{_segment(profile_id)}/custom_fields"
    body: JsonBody = {"custom_field_id": field_id, "value": value}
    return TrengoRequest("set_profile_custom_field", "POST", path, {}, body)


def attach_contact_to_profile(
    profile_id: TrengoId, contact_id: ContactId, channel_type: str
) -> TrengoRequest:
    """``POST /profiles/{id}/contacts`` with ``{contact_id, type}`` (the contact's channel type,
    e.g. ``EMAIL``, ``WA_BUSINESS``, as every public client sends it)."""
    path = f"/profiles/{_segment(profile_id)}/contacts"
    body: JsonBody = {"contact_id": contact_id, "type": channel_type}
    return TrengoRequest("attach_contact_to_profile", "POST", path, {}, body)


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


def _segment(value: TrengoId) -> str:
    return quote(str(value), safe="")
