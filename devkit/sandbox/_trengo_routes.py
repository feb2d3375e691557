"""The API routes of the Trengo sandbox under ``/api/v2``: what each call does and answers.

Contacts and tickets follow ``reference/trengo-api.md``; custom fields, profiles, labels and
messages follow the issue 10 contract, with the shapes no source establishes marked (assumed)
where they are built (``_trengo_model``, ``_trengo_profiles``). A route bound to an unknown id
answers 404 before its body is validated, as Laravel's route-model binding does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import quote

from aiohttp import web

from devkit.sandbox._trengo_http import (
    JSON_BODY_KEY,
    STATE_KEY,
    Validator,
    json_answer,
    message_answer,
    model_not_found,
    page_number,
)
from devkit.sandbox._trengo_model import (
    JSONRecordT,
    Page,
    SandboxChannel,
    SandboxCustomField,
    digits_of,
    laravel_timestamp,
    paginate,
    simple_pagination_json,
)
from devkit.sandbox._trengo_profiles import profile_timestamp
from devkit.sandbox._trengo_state import SandboxState

API_PREFIX = "/api/v2"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_PHONE = re.compile(r"\+?[\d\s().\-]+")
_RecordT = TypeVar("_RecordT")


def add_api_routes(router: web.UrlDispatcher) -> None:
    """Register every API route under ``API_PREFIX``."""
    api = API_PREFIX
    router.add_get(f"{api}/contacts", _search_contacts)
    router.add_post(rf"{api}/channels/{{channel_id:\d+}}/contacts", _create_contact)
    router.add_put(rf"{api}/contacts/{{contact_id:\d+}}", _update_contact)
    router.add_post(rf"{api}/contacts/{{contact_id:\d+}}/custom_fields", _set_contact_field)
    router.add_get(f"{api}/custom_fields", _list_custom_fields)
    router.add_get(f"{api}/channels", _list_channels)
    router.add_get(f"{api}/profiles", _search_profiles)
    router.add_post(f"{api}/profiles", _create_profile)
    router.add_put(rf"{api}/profiles/{{profile_id:\d+}}", _rename_profile)
    router.add_post(rf"{api}/profiles/{{profile_id:\d+}}/custom_fields", _set_profile_field)
    router.add_post(rf"{api}/profiles/{{profile_id:\d+}}/contacts", _attach_profile_contact)
    router.add_get(f"{api}/labels", _list_labels)
    router.add_post(f"{api}/tickets", _create_ticket)
    router.add_post(rf"{api}/tickets/{{ticket_id:\d+}}/labels", _label_ticket)
    router.add_post(rf"{api}/tickets/{{ticket_id:\d+}}/messages", _post_message)


def _bound(
    request: web.Request, parameter: str, records: Mapping[int, _RecordT]
) -> tuple[int, _RecordT | None]:
    """The id in the path ``parameter`` and its record, if any."""
    record_id = int(request.match_info[parameter])
    return record_id, records.get(record_id)


def _now(state: SandboxState) -> str:
    return laravel_timestamp(state.clock.wall())


def _listing(request: web.Request, page: Page[JSONRecordT], term: str = "") -> web.Response:
    """The simple-pagination answer for ``page``; a ``term`` is kept in the page links."""
    path = f"{request.scheme}://{request.host}{request.path}"
    query_suffix = f"&term={quote(term, safe='')}" if term else ""
    return json_answer(simple_pagination_json(page, path, query_suffix))


def _forbidden(state: SandboxState, channel: SandboxChannel) -> web.Response | None:
    """Laravel's policy refusal when the token's user may not use ``channel`` (§13)."""
    if channel.id in state.knobs.forbidden_channels:
        return message_answer("This action is unauthorized.", 403)
    return None


def _check_identifier(validator: Validator, channel: SandboxChannel, identifier: str) -> None:
    if channel.is_phone and not (_PHONE.fullmatch(identifier) and digits_of(identifier)):
        validator.fail("identifier", "field format is invalid.")
    elif not channel.is_phone and not _EMAIL.fullmatch(identifier):
        validator.fail("identifier", "field must be a valid email address.")


# --- contacts ---------------------------------------------------------------------------------


async def _search_contacts(request: web.Request) -> web.Response:
    """``GET /contacts?term=&page=``: fuzzy search over all channels, simple pagination."""
    state = request.app[STATE_KEY]
    term = request.query.get("term", "")
    return _listing(request, state.data.search(term, page_number(request.query.get("page"))), term)


async def _create_contact(request: web.Request) -> web.Response:
    """``POST /channels/{id}/contacts``: 201 with a new contact, 200 with an existing email one."""
    state = request.app[STATE_KEY]
    channel_id, channel = _bound(request, "channel_id", state.data.channels)
    if channel is None:
        return model_not_found("Channel", channel_id)
    if (refusal := _forbidden(state, channel)) is not None:
        return refusal
    validator = Validator(request[JSON_BODY_KEY])
    identifier = validator.string("identifier", required=True)
    name = validator.string("name", required=False)
    if identifier is not None:
        _check_identifier(validator, channel, identifier)
    if identifier is None or validator.errors:
        return validator.failure()
    contact, created = state.data.find_or_create_contact(channel, identifier, name, _now(state))
    return json_answer(contact.to_json(with_channels=False), 201 if created else 200)


async def _update_contact(request: web.Request) -> web.Response:
    """``PUT /contacts/{id}``: rename (and regroup)."""
    state = request.app[STATE_KEY]
    contact_id, contact = _bound(request, "contact_id", state.data.contacts)
    if contact is None:
        return model_not_found("Contact", contact_id)
    validator = Validator(request[JSON_BODY_KEY])
    name = validator.string("name", required=True)
    group_ids = validator.optional_ids("contact_group_ids")
    if name is None or validator.errors:
        return validator.failure()
    state.data.update_contact(contact, name, group_ids)
    return json_answer(contact.to_json(with_details=True))


async def _set_contact_field(request: web.Request) -> web.Response:
    """``POST /contacts/{id}/custom_fields`` ``{custom_field_id, value}``: the updated contact.

    The field must be a custom field of type contact.
    """
    state = request.app[STATE_KEY]
    contact_id, contact = _bound(request, "contact_id", state.data.contacts)
    if contact is None:
        return model_not_found("Contact", contact_id)
    field_value = _field_value(request, state.data.contact_fields)
    if isinstance(field_value, web.Response):
        return field_value
    contact.set_custom_field(*field_value)
    return json_answer(contact.to_json(with_details=True))


def _field_value(
    request: web.Request, fields: Mapping[int, SandboxCustomField]
) -> tuple[SandboxCustomField, str] | web.Response:
    """The body's ``{custom_field_id, value}`` (the field one of ``fields``), or the 422."""
    validator = Validator(request[JSON_BODY_KEY])
    custom_field = validator.existing("custom_field_id", fields)
    value = validator.string("value", required=True)
    if custom_field is None or value is None or validator.errors:
        return validator.failure()
    return custom_field, value


async def _list_channels(request: web.Request) -> web.Response:
    """``GET /channels?page=``: every channel (§13: ``id``, ``type``, ``title``, ...)."""
    channels = request.app[STATE_KEY].data.channels.values()
    return _listing(request, paginate(channels, page_number(request.query.get("page"))))


async def _list_custom_fields(request: web.Request) -> web.Response:
    """``GET /custom_fields?page=``: every custom field, CONTACT, PROFILE and TICKET alike."""
    custom_fields = request.app[STATE_KEY].data.custom_fields.values()
    return _listing(request, paginate(custom_fields, page_number(request.query.get("page"))))


# --- profiles ---------------------------------------------------------------------------------


async def _search_profiles(request: web.Request) -> web.Response:
    """``GET /profiles?term=&page=``: profiles whose name or a field value contains ``term``."""
    profiles = request.app[STATE_KEY].profiles
    term = request.query.get("term", "")
    return _listing(request, profiles.search(term, page_number(request.query.get("page"))), term)


async def _create_profile(request: web.Request) -> web.Response:
    """``POST /profiles`` ``{name}``: 200 with the new profile (no fields, no contacts)."""
    state = request.app[STATE_KEY]
    validator = Validator(request[JSON_BODY_KEY])
    name = validator.string("name", required=True)
    if name is None or validator.errors:
        return validator.failure()
    created_at = profile_timestamp(state.clock.wall())
    return json_answer(state.profiles.create(name, created_at).to_json())


async def _rename_profile(request: web.Request) -> web.Response:
    """``PUT /profiles/{id}`` ``{name}``: the renamed profile."""
    state = request.app[STATE_KEY]
    profile_id, profile = _bound(request, "profile_id", state.profiles.by_id)
    if profile is None:
        return model_not_found("Profile", profile_id)
    validator = Validator(request[JSON_BODY_KEY])
    name = validator.string("name", required=True)
    if name is None or validator.errors:
        return validator.failure()
    state.profiles.rename(profile, name)
    return json_answer(profile.to_json())


async def _set_profile_field(request: web.Request) -> web.Response:
    """``POST /profiles/{id}/custom_fields`` ``{custom_field_id, value}``: the updated profile.

    The field must be a custom field of type profile.
    """
    state = request.app[STATE_KEY]
    profile_id, profile = _bound(request, "profile_id", state.profiles.by_id)
    if profile is None:
        return model_not_found("Profile", profile_id)
    field_value = _field_value(request, state.data.profile_fields)
    if isinstance(field_value, web.Response):
        return field_value
    state.profiles.set_field(profile, *field_value)
    return json_answer(profile.to_json())


async def _attach_profile_contact(request: web.Request) -> web.Response:
    """``POST /profiles/{id}/contacts`` ``{contact_id, type}``: the profile with the contact.

    ``type`` is the contact's channel type, as every public client sends it (whether Trengo
    needs it is not known, §13: the sandbox does, 422 without it or with another type). An
    unknown contact is a 404 like an unknown profile; attaching twice is a no-op.
    """
    state = request.app[STATE_KEY]
    profile_id, profile = _bound(request, "profile_id", state.profiles.by_id)
    if profile is None:
        return model_not_found("Profile", profile_id)
    validator = Validator(request[JSON_BODY_KEY])
    contact_id = validator.integer("contact_id")
    channel_type = validator.string("type", required=True)
    if contact_id is None or channel_type is None or validator.errors:
        return validator.failure()
    contact = state.data.contacts.get(contact_id)
    if contact is None:
        return model_not_found("Contact", contact_id)
    if channel_type != contact.channel.type:
        validator.invalid("type")
        return validator.failure()
    profile.attach_contact(contact)
    return json_answer(profile.to_json())


# --- tickets, labels, messages ----------------------------------------------------------------


async def _create_ticket(request: web.Request) -> web.Response:
    """``POST /tickets``: 201 with an OPEN ticket; 422 for a missing/unknown channel or contact."""
    state = request.app[STATE_KEY]
    validator = Validator(request[JSON_BODY_KEY])
    channel = validator.existing("channel_id", state.data.channels)
    contact = validator.existing("contact_id", state.data.contacts)
    subject = validator.string("subject", required=False)
    if channel is None or contact is None or validator.errors:
        return validator.failure()
    if (refusal := _forbidden(state, channel)) is not None:
        return refusal
    ticket = state.data.create_ticket(channel, contact, subject, _now(state))
    return json_answer(ticket.to_json(), 201)


async def _list_labels(request: web.Request) -> web.Response:
    """``GET /labels?page=``: the configured labels."""
    labels = request.app[STATE_KEY].data.labels.values()
    return _listing(request, paginate(labels, page_number(request.query.get("page"))))


async def _label_ticket(request: web.Request) -> web.Response:
    """``POST /tickets/{id}/labels`` ``{label_id}``: the ticket with its labels (twice: no-op)."""
    state = request.app[STATE_KEY]
    ticket_id, ticket = _bound(request, "ticket_id", state.data.tickets)
    if ticket is None:
        return model_not_found("Ticket", ticket_id)
    validator = Validator(request[JSON_BODY_KEY])
    label = validator.existing("label_id", state.data.labels)
    if label is None or validator.errors:
        return validator.failure()
    ticket.add_label(label, _now(state))
    return json_answer(ticket.to_json())


async def _post_message(request: web.Request) -> web.Response:
    """``POST /tickets/{id}/messages`` ``{message, internal_note?}``: the message object."""
    state = request.app[STATE_KEY]
    ticket_id, ticket = _bound(request, "ticket_id", state.data.tickets)
    if ticket is None:
        return model_not_found("Ticket", ticket_id)
    validator = Validator(request[JSON_BODY_KEY])
    text = validator.string("message", required=True)
    internal_note = validator.boolean("internal_note")
    if text is None or validator.errors:
        return validator.failure()
    message = state.data.post_message(
        ticket, text, internal_note=internal_note, posted_at=_now(state)
    )
    return json_answer(message.to_json())
