"""The aiohttp application of the Trengo sandbox: API routes under ``/api/v2``, admin routes.

Every API request passes one middleware, in this order: latency, hang, outage (503, nothing
counted), bearer token (401, no rate headers), 429 storm, rate limit (429), denied token (403),
injected 5xx, then the route. While a limit is set, every answer after the token check carries
the rate-limit headers. Every answer is recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar
from urllib.parse import quote

import pydantic
from aiohttp import web

from processor.sandbox._trengo_model import (
    JSONObject,
    JSONValue,
    SandboxChannel,
    digits_of,
    laravel_timestamp,
    simple_pagination_json,
)
from processor.sandbox._trengo_options import SYSTEM_CLOCK, SandboxClock, SandboxOptions
from processor.sandbox._trengo_state import SandboxState
from processor.sandbox._trengo_traffic import RateDecision

API_PREFIX = "/api/v2"
ADMIN_PREFIX = "/__admin"
STATE_KEY = web.AppKey("trengo_sandbox_state", SandboxState)

_JSON_BODY_KEY: web.RequestKey[JSONValue] = web.RequestKey("trengo_sandbox_json_body")
_UNMATCHED_ROUTE = "<unmatched>"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_PHONE = re.compile(r"\+?[\d\s().\-]+")
_RecordT = TypeVar("_RecordT")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(options: SandboxOptions, clock: SandboxClock = SYSTEM_CLOCK) -> web.Application:
    """The sandbox as an aiohttp application; its state is ``app[STATE_KEY]``."""
    app = web.Application(middlewares=[_api_middleware])
    state = SandboxState(options, clock)
    app[STATE_KEY] = state
    app.on_shutdown.append(_release_hung_requests)
    app.router.add_get(f"{API_PREFIX}/contacts", _search_contacts)
    app.router.add_post(rf"{API_PREFIX}/channels/{{channel_id:\d+}}/contacts", _create_contact)
    app.router.add_put(rf"{API_PREFIX}/contacts/{{contact_id:\d+}}", _update_contact)
    app.router.add_post(f"{API_PREFIX}/tickets", _create_ticket)
    app.router.add_get(f"{ADMIN_PREFIX}/health", _admin_health)
    app.router.add_get(f"{ADMIN_PREFIX}/requests", _admin_requests)
    app.router.add_get(f"{ADMIN_PREFIX}/state", _admin_state)
    app.router.add_post(f"{ADMIN_PREFIX}/faults", _admin_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", _admin_reset)
    return app


async def _release_hung_requests(app: web.Application) -> None:
    app[STATE_KEY].release_hung_requests()


def _json(body: JSONValue, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _message(message: str, status: int) -> web.Response:
    return _json({"message": message}, status)


# --- the API pipeline ------------------------------------------------------------------------


@web.middleware
async def _api_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    state = request.app[STATE_KEY]
    arrived_at = state.clock.wall()
    json_body = await _read_json(request)
    request[_JSON_BODY_KEY] = json_body
    token = _bearer_token(request)
    response = await _answer_api_request(state, request, handler, token)
    resource = request.match_info.route.resource
    state.recorder.record(
        method=request.method,
        path=request.path,
        route=resource.canonical if resource is not None else _UNMATCHED_ROUTE,
        query=dict(request.query),
        json_body=json_body,
        token=token,
        status=response.status,
        at=arrived_at,
    )
    return response


async def _read_json(request: web.Request) -> JSONValue:
    if not request.body_exists:
        return None
    try:
        parsed: JSONValue = json.loads(await request.read())
    except ValueError:
        return None
    return parsed


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _answer_api_request(
    state: SandboxState, request: web.Request, handler: _Handler, token: str | None
) -> web.StreamResponse:
    knobs = state.knobs
    if knobs.latency_ms:
        await state.clock.sleep(knobs.latency_ms / 1000)
    if knobs.hang:
        await state.wait_for_hang_release()
        return _message("Service Unavailable", 503)
    if state.outage_active():
        return _message("Service Unavailable", 503)
    if token is None or (token not in knobs.tokens and token not in knobs.denied_tokens):
        return _message("Unauthenticated.", 401)
    decision = _rate_decision(state, token)
    if decision is not None and decision.retry_after is not None:
        response: web.StreamResponse = _message("Too Many Attempts.", 429)
    else:
        response = await _answer_authenticated(state, request, handler, token)
    if decision is not None:
        response.headers.update(_rate_headers(decision))
    return response


def _rate_decision(state: SandboxState, token: str) -> RateDecision | None:
    """The storm's forced refusal, else the limiter's decision; None without a limit."""
    limit = state.knobs.rate_limit
    if state.take_storm_request():
        retry_after = state.knobs.storm_retry_after_seconds
        return RateDecision(limit, 0, retry_after, int(state.clock.wall()) + retry_after)
    return state.limiter.hit(token, limit) if limit is not None else None


def _rate_headers(decision: RateDecision) -> dict[str, str]:
    headers: dict[str, str] = {}
    if decision.limit is not None:
        headers["x-ratelimit-limit"] = str(decision.limit)
        headers["x-ratelimit-remaining"] = str(decision.remaining)
    if decision.retry_after is not None and decision.reset_at is not None:
        headers["Retry-After"] = str(decision.retry_after)
        headers["X-RateLimit-Reset"] = str(decision.reset_at)
    return headers


async def _answer_authenticated(
    state: SandboxState, request: web.Request, handler: _Handler, token: str
) -> web.StreamResponse:
    knobs = state.knobs
    if token in knobs.denied_tokens:
        return _message("This action is unauthorized.", 403)
    if knobs.error_rate and state.rng.random() < knobs.error_rate:
        status = state.rng.choice((500, 503))
        return _message("Server Error" if status == 500 else "Service Unavailable", status)
    try:
        return await handler(request)
    except web.HTTPException as exc:  # unknown route or method: JSON like the rest of the API
        return _message(exc.reason, exc.status)


# --- validation, Laravel style ---------------------------------------------------------------


def _as_int(value: JSONValue) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


class _Validator:
    """Reads fields of a JSON body and collects Laravel's 422 messages for the wrong ones.

    Strings are trimmed and an empty string counts as missing, as Laravel's middleware does.
    """

    def __init__(self, body: JSONValue) -> None:
        self._body: Mapping[str, JSONValue] = body if isinstance(body, dict) else {}
        self.errors: dict[str, list[str]] = {}

    def fail(self, field: str, rule_message: str) -> None:
        """Record ``The <field> <rule_message>`` for ``field``."""
        label = field.replace("_", " ")
        self.errors.setdefault(field, []).append(f"The {label} {rule_message}")

    def string(self, field: str, *, required: bool) -> str | None:
        """The trimmed string in ``field``, or None (an error when required or not a string)."""
        value = self._body.get(field)
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            if required:
                self.fail(field, "field is required.")
            return None
        if not isinstance(value, str):
            self.fail(field, "field must be a string.")
            return None
        return value

    def existing(self, field: str, records: Mapping[int, _RecordT]) -> _RecordT | None:
        """The record whose id is in ``field`` (required, integer, must exist)."""
        value = self._body.get(field)
        if value is None or value == "":
            self.fail(field, "field is required.")
            return None
        record_id = _as_int(value)
        record = records.get(record_id) if record_id is not None else None
        if record_id is None:
            self.fail(field, "field must be an integer.")
        elif record is None:
            self.errors.setdefault(field, []).append(
                f"The selected {field.replace('_', ' ')} is invalid."
            )
        return record

    def optional_ids(self, field: str) -> tuple[int, ...] | None:
        """A list of integer ids in ``field``, or None when absent."""
        value = self._body.get(field)
        if value is None:
            return None
        ids = [_as_int(item) for item in value] if isinstance(value, list) else None
        if ids is None or None in ids:
            self.fail(field, "field must be an array of integers.")
            return None
        return tuple(i for i in ids if i is not None)

    def failure(self) -> web.Response:
        """The 422 answer: first message (+ "(and N more errors)") and all errors by field."""
        messages = [
            message for field_messages in self.errors.values() for message in field_messages
        ]
        summary = messages[0]
        if len(messages) > 1:
            more = len(messages) - 1
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        errors: JSONObject = {field: list(msgs) for field, msgs in self.errors.items()}
        return _json({"message": summary, "errors": errors}, 422)


def _check_identifier(validator: _Validator, channel: SandboxChannel, identifier: str) -> None:
    if channel.is_phone and not (_PHONE.fullmatch(identifier) and digits_of(identifier)):
        validator.fail("identifier", "field format is invalid.")
    elif not channel.is_phone and not _EMAIL.fullmatch(identifier):
        validator.fail("identifier", "field must be a valid email address.")


# --- API routes ------------------------------------------------------------------------------


def _page_number(raw: str | None) -> int:
    page = _as_int(raw)
    return page if page is not None and page >= 1 else 1


async def _search_contacts(request: web.Request) -> web.Response:
    """``GET /contacts?term=&page=``: fuzzy search over all channels, simple pagination."""
    state = request.app[STATE_KEY]
    term = request.query.get("term", "")
    result = state.data.search(term, _page_number(request.query.get("page")))
    path = f"{request.scheme}://{request.host}{request.path}"
    query_suffix = f"&term={quote(term, safe='')}" if term else ""
    return _json(simple_pagination_json(result, path, query_suffix))


async def _create_contact(request: web.Request) -> web.Response:
    """``POST /channels/{id}/contacts``: 201 with a new contact, 200 with an existing email one."""
    state = request.app[STATE_KEY]
    channel_id = int(request.match_info["channel_id"])
    channel = state.data.channels.get(channel_id)
    if channel is None:
        return _message(f"No query results for model [App\\Models\\Channel] {channel_id}", 404)
    validator = _Validator(request[_JSON_BODY_KEY])
    identifier = validator.string("identifier", required=True)
    name = validator.string("name", required=False)
    if identifier is not None:
        _check_identifier(validator, channel, identifier)
    if identifier is None or validator.errors:
        return validator.failure()
    created_at = laravel_timestamp(state.clock.wall())
    contact, created = state.data.find_or_create_contact(channel, identifier, name, created_at)
    return _json(contact.to_json(with_channels=False), 201 if created else 200)


async def _update_contact(request: web.Request) -> web.Response:
    """``PUT /contacts/{id}``: rename (and regroup); 404 for an unknown id, checked first."""
    state = request.app[STATE_KEY]
    contact_id = int(request.match_info["contact_id"])
    contact = state.data.contacts.get(contact_id)
    if contact is None:
        return _message(f"No query results for model [App\\Models\\Contact] {contact_id}", 404)
    validator = _Validator(request[_JSON_BODY_KEY])
    name = validator.string("name", required=True)
    group_ids = validator.optional_ids("contact_group_ids")
    if name is None or validator.errors:
        return validator.failure()
    state.data.update_contact(contact, name, group_ids)
    return _json(contact.to_json(with_details=True))


async def _create_ticket(request: web.Request) -> web.Response:
    """``POST /tickets``: 201 with an OPEN ticket; 422 for a missing/unknown channel or contact."""
    state = request.app[STATE_KEY]
    validator = _Validator(request[_JSON_BODY_KEY])
    channel = validator.existing("channel_id", state.data.channels)
    contact = validator.existing("contact_id", state.data.contacts)
    subject = validator.string("subject", required=False)
    if channel is None or contact is None or validator.errors:
        return validator.failure()
    created_at = laravel_timestamp(state.clock.wall())
    ticket = state.data.create_ticket(channel, contact, subject, created_at)
    return _json(ticket.to_json(), 201)


# --- admin routes (no auth, no rate limit, not recorded) -------------------------------------


async def _admin_health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _admin_requests(request: web.Request) -> web.Response:
    """``GET /__admin/requests?since=N``: recorded requests numbered N or later."""
    since = _as_int(request.query.get("since", "0"))
    if since is None:
        return _message("since must be a non-negative integer", 400)
    recorder = request.app[STATE_KEY].recorder
    recorded: list[JSONValue] = [entry.to_json() for entry in recorder.since(since)]
    return _json({"requests": recorded, "next_index": recorder.total})


async def _admin_state(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].snapshot())


async def _admin_faults(request: web.Request) -> web.Response:
    """``POST /__admin/faults``: change any fault knob, the rate limit or the token sets."""
    update = await _read_json(request)
    if not isinstance(update, dict):
        return _message("body must be a JSON object of knobs", 400)
    state = request.app[STATE_KEY]
    try:
        state.apply_faults(update)
    except pydantic.ValidationError as exc:
        return _json({"message": "invalid fault knobs", "errors": _validation_errors(exc)}, 400)
    return _json({"config": state.config_json()})


def _validation_errors(exc: pydantic.ValidationError) -> list[JSONValue]:
    return [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
        for error in exc.errors()
    ]


async def _admin_reset(request: web.Request) -> web.Response:
    """``POST /__admin/reset`` (body ``{"restore_config": true}`` to restore the start options)."""
    body = await _read_json(request)
    restore_config = isinstance(body, dict) and body.get("restore_config") is True
    request.app[STATE_KEY].reset(restore_config=restore_config)
    return _json({"status": "reset", "restore_config": restore_config})
