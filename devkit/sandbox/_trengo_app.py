"""The aiohttp application of the Trengo sandbox: the API request pipeline and the admin routes.

The API routes themselves are in ``_trengo_routes``.

Every API request passes one middleware, in this order: latency, hang, outage (503, nothing
counted), bearer token (401, no rate headers), 429 storm, rate limit (429), denied token (403),
injected 5xx, then the route. While a limit is set, every answer after the token check carries
the rate-limit headers. Every answer is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pydantic
from aiohttp import web

from devkit.sandbox._trengo_http import (
    JSON_BODY_KEY,
    STATE_KEY,
    as_int,
    json_answer,
    message_answer,
)
from devkit.sandbox._trengo_model import JSONValue
from devkit.sandbox._trengo_options import SYSTEM_CLOCK, SandboxClock, SandboxOptions
from devkit.sandbox._trengo_routes import API_PREFIX, add_api_routes
from devkit.sandbox._trengo_state import SandboxState
from devkit.sandbox._trengo_traffic import RateDecision

ADMIN_PREFIX = "/__admin"

_UNMATCHED_ROUTE = "<unmatched>"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(options: SandboxOptions, clock: SandboxClock = SYSTEM_CLOCK) -> web.Application:
    """The sandbox as an aiohttp application; its state is ``app[STATE_KEY]``."""
    app = web.Application(middlewares=[_api_middleware])
    state = SandboxState(options, clock)
    app[STATE_KEY] = state
    app.on_shutdown.append(_release_hung_requests)
    add_api_routes(app.router)
    app.router.add_get(f"{ADMIN_PREFIX}/health", _admin_health)
    app.router.add_get(f"{ADMIN_PREFIX}/requests", _admin_requests)
    app.router.add_get(f"{ADMIN_PREFIX}/state", _admin_state)
    app.router.add_post(f"{ADMIN_PREFIX}/faults", _admin_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", _admin_reset)
    return app


async def _release_hung_requests(app: web.Application) -> None:
    app[STATE_KEY].release_hung_requests()


# --- the API pipeline ------------------------------------------------------------------------


@web.middleware
async def _api_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    state = request.app[STATE_KEY]
    arrived_at = state.clock.wall()
    json_body = await _read_json(request)
    request[JSON_BODY_KEY] = json_body
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
        return message_answer("Service Unavailable", 503)
    if state.outage_active():
        return message_answer("Service Unavailable", 503)
    if token is None or (token not in knobs.tokens and token not in knobs.denied_tokens):
        return message_answer("Unauthenticated.", 401)
    decision = _rate_decision(state, token)
    if decision is not None and decision.retry_after is not None:
        response: web.StreamResponse = message_answer("Too Many Attempts.", 429)
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
        return message_answer("This action is unauthorized.", 403)
    if knobs.error_rate and state.rng.random() < knobs.error_rate:
        status = state.rng.choice((500, 503))
        return message_answer("Server Error" if status == 500 else "Service Unavailable", status)
    if knobs.unavailable_for and await _mentions(request, knobs.unavailable_for):
        return message_answer("Service Unavailable", 503)
    try:
        return await handler(request)
    except web.HTTPException as exc:  # unknown route or method: JSON like the rest of the API
        return message_answer(exc.reason, exc.status)


async def _mentions(request: web.Request, texts: tuple[str, ...]) -> bool:
    seen = request.query_string + (await request.text() if request.body_exists else "")
    return any(text in seen for text in texts)


# --- admin routes (no auth, no rate limit, not recorded) -------------------------------------


async def _admin_health(request: web.Request) -> web.Response:
    return json_answer({"status": "ok"})


async def _admin_requests(request: web.Request) -> web.Response:
    """``GET /__admin/requests?since=N``: recorded requests numbered N or later."""
    since = as_int(request.query.get("since", "0"))
    if since is None:
        return message_answer("since must be a non-negative integer", 400)
    recorder = request.app[STATE_KEY].recorder
    recorded: list[JSONValue] = [entry.to_json() for entry in recorder.since(since)]
    return json_answer({"requests": recorded, "next_index": recorder.total})


async def _admin_state(request: web.Request) -> web.Response:
    return json_answer(request.app[STATE_KEY].snapshot())


async def _admin_faults(request: web.Request) -> web.Response:
    """``POST /__admin/faults``: change any fault knob, the rate limit or the token sets."""
    update = await _read_json(request)
    if not isinstance(update, dict):
        return message_answer("body must be a JSON object of knobs", 400)
    state = request.app[STATE_KEY]
    try:
        state.apply_faults(update)
    except pydantic.ValidationError as exc:
        return json_answer(
            {"message": "invalid fault knobs", "errors": _validation_errors(exc)}, 400
        )
    return json_answer({"config": state.config_json()})


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
    return json_answer({"status": "reset", "restore_config": restore_config})
