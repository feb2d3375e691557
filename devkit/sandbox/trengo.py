"""Trengo sandbox: a fake Trengo REST API v2 on loopback, for the demo, tests and benchmarks.

It answers like the real API as far as ``reference/trengo-api.md`` knows it, and like the issue
10 contract (``notes/issue10-api.md``) beyond that; shapes marked (assumed) are fixed by the
sandbox alone and are to be checked against a live account:

* ``GET /api/v2/contacts?term=&page=``: case-insensitive substring search over name, email and
  phone (a phone-like term also matches by digits: ``9830311521`` finds ``+98 30311521``), all
  channels, 25 per page in Laravel's simple-pagination envelope.
* ``POST /api/v2/channels/{id}/contacts``: email channels find-or-create (200 with the existing
  contact, 201 with a new one); phone channels (SMS, VOIP, WA_BUSINESS) always create (201).
* ``PUT /api/v2/contacts/{id}`` (200, 404) and ``POST /api/v2/tickets`` (201, 422).
* ``POST /api/v2/contacts/{id}/custom_fields`` ``{custom_field_id, value}``: 200 with the contact;
  the field must be a CONTACT field of ``SandboxOptions.custom_fields`` (422), the contact must
  exist (404). Contacts and profiles give field values as §13 shows them: ``custom_field_data``
  keyed by the field's title, ``custom_field_values [{custom_field_id, field_name, value}]`` and
  ``custom_fields[].pivot``.
* ``GET /api/v2/custom_fields?page=``: ``{id, title, type (CONTACT|PROFILE|TICKET), field_type}``;
  ``GET /api/v2/channels?page=``: the channels ``{id, type, title, display_name, ...}``.
* ``GET /api/v2/profiles?term=&page=`` (``term``: substring of the name only: the narrow reading
  of an open question), ``POST /api/v2/profiles`` ``{name}`` (200), ``PUT /api/v2/profiles/{id}``,
  ``POST /api/v2/profiles/{id}/custom_fields`` (PROFILE fields only) and
  ``POST /api/v2/profiles/{id}/contacts`` ``{contact_id, type}`` (``type`` required and equal to
  the contact's channel type; twice is a no-op, assumed; unknown contact 404); every one answers
  the captured profile object ``{id, name, abbr, color, created_at, user, notes, custom_fields,
  custom_field_values, custom_field_data, contacts [{id, name, identifier}]}``.
* ``GET /api/v2/labels?page=``: ``{id, name, color, sort_order}`` (assumed), ids from 3001;
  ``POST /api/v2/tickets/{id}/labels`` ``{label_id}``: 200 with the ticket and its ``labels``
  (twice is a no-op; unknown label 422, unknown ticket 404).
* ``POST /api/v2/tickets/{id}/messages`` ``{message, internal_note?}``: 200 with ``{id, ticket_id,
  message, type: OUTBOUND|NOTE, internal_note, created_at}`` (assumed).
* Bearer tokens (401), denied tokens (403 on every call), forbidden channels (403
  ``{"message": "This action is unauthorized."}`` for a contact or ticket created on them, every
  other call works), a per-token fixed 60 s window rate limit with
  ``x-ratelimit-*`` headers and 429 + ``Retry-After`` + ``X-RateLimit-Reset``, ids above 2**32.
* Faults on demand: latency, a seeded 5xx rate, an outage window, a 429 storm, a hang.
* ``/__admin/{health,requests,state,faults,reset}``: no auth, no rate limit, not recorded.
  ``state`` (and ``RunningSandbox.snapshot()``) holds contacts (with their field values),
  tickets (with ``labels`` and ``messages``) and profiles (with ``contacts`` and field values).

In process: ``create_app`` (aiohttp tests) or ``RunningSandbox`` (a real server on a background
thread). Foreground: ``serve``, behind ``trengo-processor sandbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self, TypeVar, get_args

from aiohttp import web

from devkit.sandbox._trengo_app import ADMIN_PREFIX, create_app
from devkit.sandbox._trengo_http import STATE_KEY
from devkit.sandbox._trengo_model import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    DEFAULT_LABELS,
    FIRST_CONTACT_ID,
    FIRST_LABEL_ID,
    FIRST_MESSAGE_ID,
    FIRST_TICKET_ID,
    ChannelType,
    CustomFieldType,
    JSONObject,
    SandboxChannel,
    SandboxCustomField,
)
from devkit.sandbox._trengo_options import (
    DEFAULT_TOKEN,
    SYSTEM_CLOCK,
    FaultKnobs,
    ManualClock,
    SandboxClock,
    SandboxOptions,
)
from devkit.sandbox._trengo_profiles import FIRST_PROFILE_ID
from devkit.sandbox._trengo_routes import API_PREFIX
from devkit.sandbox._trengo_state import SandboxState
from devkit.sandbox._trengo_traffic import RecordedRequest

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "DEFAULT_CHANNELS",
    "DEFAULT_CUSTOM_FIELDS",
    "DEFAULT_LABELS",
    "DEFAULT_PORT",
    "DEFAULT_TOKEN",
    "FIRST_CONTACT_ID",
    "FIRST_LABEL_ID",
    "FIRST_MESSAGE_ID",
    "FIRST_PROFILE_ID",
    "FIRST_TICKET_ID",
    "STATE_KEY",
    "SYSTEM_CLOCK",
    "FaultKnobs",
    "ManualClock",
    "RecordedRequest",
    "RunningSandbox",
    "SandboxChannel",
    "SandboxClock",
    "SandboxCustomField",
    "SandboxOptions",
    "SandboxState",
    "add_sandbox_arguments",
    "create_app",
    "main",
    "options_from_args",
    "serve",
]

DEFAULT_PORT = 8089
_LOOPBACK = "127.0.0.1"
# Bounds how long stopping waits for in-flight handlers (hung ones are released at shutdown).
_SHUTDOWN_TIMEOUT_SECONDS = 5.0
_THREAD_TIMEOUT_SECONDS = 10.0
_ResultT = TypeVar("_ResultT")


class RunningSandbox:
    """The sandbox on 127.0.0.1 and a free port, served by a background thread with its own loop.

    Use it once, as a context manager (or ``start()`` / ``close()``).

    Thread safety: the state belongs to the sandbox's event loop. ``requests()``, ``snapshot()``,
    ``contacts()``, ``tickets()``, ``profiles()``, ``set_faults()`` and ``reset()`` run on that
    loop and return copies, so they are safe from any thread at any time. ``state`` is the live
    object: read it only while no request is in flight (e.g. after the client under test
    finished), and never change it directly.
    """

    def __init__(
        self, options: SandboxOptions | None = None, clock: SandboxClock = SYSTEM_CLOCK
    ) -> None:
        self.options = options or SandboxOptions()
        self._app = create_app(self.options, clock)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:PORT/api/v2``."""
        return f"http://{_LOOPBACK}:{self.port}{API_PREFIX}"

    @property
    def admin_url(self) -> str:
        """The admin base URL, e.g. ``http://127.0.0.1:PORT/__admin``."""
        return f"http://{_LOOPBACK}:{self.port}{ADMIN_PREFIX}"

    @property
    def token(self) -> str:
        """The first valid API token of the start options."""
        return self.options.tokens[0]

    @property
    def state(self) -> SandboxState:
        """The live state (see the class docstring before reading it)."""
        return self._app[STATE_KEY]

    def start(self) -> Self:
        """Start serving; returns once the port is bound (``RuntimeError`` if it failed)."""
        self._thread = threading.Thread(target=self._run, name="trengo-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(_THREAD_TIMEOUT_SECONDS):
            raise RuntimeError("the Trengo sandbox did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("the Trengo sandbox failed to start") from self._startup_error
        return self

    def close(self) -> None:
        """Stop serving (held and in-flight requests are answered first) and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        thread.join(_THREAD_TIMEOUT_SECONDS)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def requests(self, since: int = 0) -> list[RecordedRequest]:
        """The recorded API requests numbered ``since`` or later, oldest first."""
        return self._on_loop(lambda: self.state.recorder.since(since))

    def snapshot(self) -> JSONObject:
        """Account, records, counts and config, as ``GET /__admin/state`` returns them."""
        return self._on_loop(self.state.snapshot)

    def contacts(self) -> list[JSONObject]:
        """Every contact as ``snapshot()["contacts"]`` lists it (with its field values)."""
        return self._on_loop(self.state.contacts_json)

    def tickets(self) -> list[JSONObject]:
        """Every ticket as ``snapshot()["tickets"]`` lists it (with ``labels``, ``messages``)."""
        return self._on_loop(self.state.tickets_json)

    def profiles(self) -> list[JSONObject]:
        """Every profile as ``snapshot()["profiles"]`` lists it (with ``contacts``)."""
        return self._on_loop(self.state.profiles_json)

    def set_faults(self, **knobs: object) -> FaultKnobs:
        """Change knobs as ``POST /__admin/faults`` does (raises ``pydantic.ValidationError``)."""
        return self._on_loop(lambda: self.state.apply_faults(knobs))

    def reset(self, *, restore_config: bool = False) -> None:
        """Like ``POST /__admin/reset``: forget data and recording, keep (or restore) the config."""
        self._on_loop(lambda: self.state.reset(restore_config=restore_config))

    def _on_loop(self, read_or_change: Callable[[], _ResultT]) -> _ResultT:
        loop = self._loop
        if self._thread is None or loop is None:
            return read_or_change()

        async def call() -> _ResultT:
            return read_or_change()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(_THREAD_TIMEOUT_SECONDS)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self._app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS
        )
        try:
            await runner.setup()
            await web.TCPSite(runner, _LOOPBACK, 0).start()
            self.port = runner.addresses[0][1]
        except BaseException as exc:
            self._startup_error = exc
            raise
        finally:
            self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()


def serve(options: SandboxOptions, host: str, port: int) -> None:
    """Serve the sandbox in the foreground until SIGINT or SIGTERM, then stop cleanly."""

    def announce(aiohttp_banner: str) -> None:
        print(aiohttp_banner, flush=True)
        print(f"Trengo sandbox API under {API_PREFIX}, admin under {ADMIN_PREFIX}/", flush=True)

    web.run_app(
        create_app(options),
        host=host,
        port=port,
        access_log=None,
        shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS,
        print=announce,
        handle_signals=True,
    )


def main(argv: Sequence[str]) -> int:
    """``trengo-processor sandbox [flags]``: parse the flags and serve in the foreground."""
    parser = argparse.ArgumentParser(
        prog="trengo-processor sandbox", description="Run the local fake Trengo API."
    )
    add_sandbox_arguments(parser)
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    serve(options, args.host, args.port)
    return 0


def _channel_argument(text: str) -> SandboxChannel:
    channel_id, _, rest = text.partition(":")
    channel_type, _, title = rest.partition(":")
    channel_types = get_args(ChannelType)
    if not channel_id.isdigit() or channel_type.upper() not in channel_types:
        raise argparse.ArgumentTypeError(
            f"expected ID:TYPE[:TITLE] with TYPE one of {', '.join(channel_types)}, got {text!r}"
        )
    return SandboxChannel.model_validate(
        {"id": int(channel_id), "type": channel_type.upper(), "title": title or channel_type}
    )


def _custom_field_argument(text: str) -> SandboxCustomField:
    field_id, _, rest = text.partition(":")
    field_type, _, title = rest.partition(":")
    field_types = get_args(CustomFieldType)
    if not field_id.isdigit() or field_type.upper() not in field_types or not title:
        raise argparse.ArgumentTypeError(
            f"expected ID:TYPE:TITLE with TYPE one of {', '.join(field_types)}, got {text!r}"
        )
    return SandboxCustomField.model_validate(
        {"id": int(field_id), "type": field_type.upper(), "title": title}
    )


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's flags (``--port``, ``--token``, fault knobs, ...) to ``parser``."""
    defaults = SandboxOptions()
    add = parser.add_argument
    add("--host", default=_LOOPBACK, help="address to listen on (default %(default)s)")
    add("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default %(default)s)")
    add(
        "--token",
        dest="tokens",
        action="append",
        metavar="TOKEN",
        help=f"a valid API token; repeatable (default {DEFAULT_TOKEN})",
    )
    add(
        "--denied-token",
        dest="denied_tokens",
        action="append",
        metavar="TOKEN",
        help="a token that authenticates but gets 403; repeatable",
    )
    add(
        "--forbidden-channel",
        dest="forbidden_channels",
        action="append",
        type=int,
        metavar="ID",
        help="a channel the token's user may not use: contact/ticket creates on it get 403",
    )
    add(
        "--requests-per-minute",
        type=int,
        default=defaults.requests_per_minute,
        help="rate limit per token, fixed 60 s window; 0 disables (default %(default)s)",
    )
    add("--latency-ms", type=float, default=defaults.latency_ms, help="delay per API request")
    add(
        "--error-rate",
        type=float,
        default=defaults.error_rate,
        help="fraction (0..1) of API requests answered 500 or 503",
    )
    add("--seed", type=int, default=defaults.seed, help="seed of the error-rate RNG")
    add(
        "--outage-seconds",
        type=float,
        default=defaults.outage_seconds,
        help="answer every API request 503 for this long after start",
    )
    add(
        "--storm-429-requests",
        type=int,
        default=defaults.storm_429_requests,
        help="answer this many first API requests 429",
    )
    add(
        "--storm-retry-after",
        dest="storm_retry_after_seconds",
        type=int,
        default=defaults.storm_retry_after_seconds,
        help="Retry-After of the 429 storm (s)",
    )
    add("--hang", action="store_true", help="never answer API requests (until switched off)")
    add(
        "--channel",
        dest="extra_channels",
        action="append",
        type=_channel_argument,
        metavar="ID:TYPE[:TITLE]",
        help="an extra channel besides the default ones; repeatable",
    )
    add(
        "--custom-field",
        dest="extra_custom_fields",
        action="append",
        type=_custom_field_argument,
        metavar="ID:TYPE:TITLE",
        help="an extra custom field (TYPE CONTACT, PROFILE or TICKET); repeatable",
    )
    add(
        "--label",
        dest="extra_labels",
        action="append",
        metavar="NAME",
        help="an extra ticket label besides the default ones; repeatable",
    )
    add(
        "--max-recorded-requests",
        type=int,
        default=defaults.max_recorded_requests,
        help="how many recent API requests to keep (default %(default)s)",
    )


def options_from_args(args: argparse.Namespace) -> SandboxOptions:
    """The options given by the flags of ``add_sandbox_arguments`` (``ValueError`` if invalid)."""
    return SandboxOptions(
        tokens=tuple(args.tokens or (DEFAULT_TOKEN,)),
        denied_tokens=tuple(args.denied_tokens or ()),
        forbidden_channels=tuple(args.forbidden_channels or ()),
        requests_per_minute=args.requests_per_minute,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        seed=args.seed,
        outage_seconds=args.outage_seconds,
        storm_429_requests=args.storm_429_requests,
        storm_retry_after_seconds=args.storm_retry_after_seconds,
        hang=args.hang,
        channels=DEFAULT_CHANNELS + tuple(args.extra_channels or ()),
        custom_fields=DEFAULT_CUSTOM_FIELDS + tuple(args.extra_custom_fields or ()),
        labels=DEFAULT_LABELS + tuple(args.extra_labels or ()),
        max_recorded_requests=args.max_recorded_requests,
    )
