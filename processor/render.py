"""``trengo-processor render``: what one event would do, without touching the network.

Prints the outcome of decode → filter → validate → map (a filtered event: which rule
skipped it and why), then the exact requests the delivery stage would send (method, full URL,
JSON body) and when each one is sent.

The requests are the delivery stage's own: the real ``PlanExecutor`` and ``TrengoClient`` carry
out the plan against a recording ``httpx.MockTransport`` that answers as a Trengo account would
in each of ``WORLDS`` (it knows nothing yet; it knows the contact, under another name; it knows
the contact and the group's profile, under other names). Every request any world received is
listed once, in the order they go out. Ids that only a search or a create would reveal are
shown as ``{contact_id}``, ``{ticket_id}``, ``{profile_id}``, ``{channel_type}`` and
``{label_id of 'name'}``. The API token never appears.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import quote

import httpx

from processor.config import Settings, TrengoConfig
from processor.pipeline.decode import decode
from processor.pipeline.filters import EventFilter
from processor.pipeline.map import plan_event
from processor.pipeline.plan import (
    GroupPlan,
    IdentifyPlan,
    Plan,
    Rejection,
    ResolveContact,
    Skip,
    TicketPlan,
)
from processor.pipeline.templates import EventTemplates
from processor.pipeline.transform import Transformation
from processor.pipeline.validate import validate
from processor.trengo import (
    REFRESH_INTERVAL_SECONDS,
    PlanExecutor,
    TrengoClient,
    TrengoError,
)

UNKNOWN_ID = "{contact_id}"
UNKNOWN_TICKET_ID = "{ticket_id}"
UNKNOWN_PROFILE_ID = "{profile_id}"
UNKNOWN_CHANNEL_TYPE = "{channel_type}"
ANOTHER_NAME = "(another name)"
_PLACEHOLDERS = (UNKNOWN_ID, UNKNOWN_TICKET_ID, UNKNOWN_PROFILE_ID)
_UNLIMITED = 600_000  # requests per minute: the rehearsal never waits for the rate limiter

# Below the base URL: (method, path) → the endpoint's operation (as ``endpoints`` names it).
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(path), operation)
    for method, path, operation in (
        ("GET", r"/contacts", "search_contacts"),
        ("POST", r"/channels/[^/]+/contacts", "create_contact"),
        ("PUT", r"/contacts/[^/]+", "update_contact"),
        ("POST", r"/contacts/[^/]+/custom_fields", "set_contact_custom_field"),
        ("POST", r"/tickets", "create_ticket"),
        ("POST", r"/tickets/[^/]+/messages", "post_message"),
        ("POST", r"/tickets/[^/]+/labels", "attach_label"),
        ("GET", r"/labels", "list_labels"),
        ("GET", r"/channels", "list_channels"),
        ("GET", r"/custom_fields", "list_custom_fields"),
        ("GET", r"/profiles", "search_profiles"),
        ("POST", r"/profiles", "create_profile"),
        ("PUT", r"/profiles/[^/]+", "rename_profile"),
        ("POST", r"/profiles/[^/]+/custom_fields", "set_profile_custom_field"),
        ("POST", r"/profiles/[^/]+/contacts", "attach_contact_to_profile"),
    )
)


@dataclass(frozen=True, slots=True)
class World:
    """What the rehearsal's Trengo account already holds."""

    knows_contact: bool
    knows_profile: bool


Received = tuple[str, httpx.Request]  # (operation, the request as it went out)

# Least known first: where worlds part ways, the requests of a world that knows less come first
# (search, then create; a create, then the update a found contact needs instead).
WORLDS = (World(False, False), World(True, False), World(True, True))


@dataclass(frozen=True, slots=True)
class Step:
    """A request the executor sent, and the condition under which it is sent."""

    operation: str
    request: httpx.Request
    when: str

    @property
    def body(self) -> Any:
        """The JSON body, decoded; None without one."""
        return json.loads(self.request.content) if self.request.content else None


def render_event(
    value: bytes, settings: Settings, transformation: Transformation | None = None
) -> str:
    """The dry-run report for one event's bytes; with a transformation, the event before and
    after it and the report of each event it returned."""
    document = decode(value)
    if isinstance(document, Rejection):
        return _rejected(document.stage, document.reason, settings)
    if transformation is None:
        return _render_document(document, settings)
    lines = [f"before transformation: {json.dumps(document, ensure_ascii=False)}"]
    events = transformation.run(copy.deepcopy(document))
    if isinstance(events, Skip):
        return "\n".join([*lines, _skipped(events)])
    if isinstance(events, Rejection):
        return "\n".join([*lines, _rejected(events.stage, events.reason, settings)])
    for number, event in enumerate(events, start=1):
        lines.append(
            f"after transformation ({number} of {len(events)}):"
            f" {json.dumps(event, ensure_ascii=False)}"
        )
        lines.append(_render_document(event, settings))
    return "\n".join(lines)


def _render_document(document: dict[str, Any], settings: Settings) -> str:
    skip = EventFilter.from_settings(settings)(document)
    if skip is not None:
        return _skipped(skip)
    message = validate(document, accept_groups=settings.destination.enableProfiles)
    if isinstance(message, Rejection):
        return _rejected(message.stage, message.reason, settings)
    plan = plan_event(message, settings.destination, EventTemplates(settings.destination))
    if isinstance(plan, Rejection):
        return _rejected(plan.stage, plan.reason, settings)
    steps, failure = rehearse(plan, settings.trengo)
    if not steps and failure is not None:
        return _rejected("deliver", failure.reason, settings)
    lines = [f"event: {message.type} · messageId {message.messageId or '-'}", f"plan: {plan!r}"]
    lines.append("requests:" if steps else "requests: none (Trengo already has it all)")
    for number, step in enumerate(steps, start=1):
        lines.append(f"  {number}. {step.request.method} {_shown_url(step.request)}")
        if step.request.content:
            lines.append(f"     body: {json.dumps(step.body, ensure_ascii=False)}")
        lines.append(f"     when: {step.when}")
    return "\n".join(lines)


def rehearse(plan: Plan, trengo: TrengoConfig) -> tuple[list[Step], TrengoError | None]:
    """The requests the executor sends for ``plan`` in any of ``WORLDS``, in order, each with
    its condition; and the error of the last world that failed (None when none did)."""
    rehearsals = asyncio.run(_rehearse_all(plan, trengo))
    sent = _merged([received for received, _ in rehearsals])
    failures = [failure for _, failure in rehearsals if failure is not None]
    steps = [
        Step(operation, request, _when(operation, request, plan, trengo))
        for operation, request in sent
    ]
    return steps, failures[-1] if failures else None


def operation_of(request: httpx.Request, base_path: str) -> str:
    """The endpoint ``request`` goes to, as ``endpoints`` names it."""
    path = request.url.path.removeprefix(base_path)
    for method, pattern, operation in ROUTES:
        if request.method == method and pattern.fullmatch(path):
            return operation
    raise LookupError(f"no route for {request.method} {path}")


async def _rehearse_all(
    plan: Plan, trengo: TrengoConfig
) -> list[tuple[list[Received], TrengoError | None]]:
    base_path = httpx.URL(trengo.base_url).path.rstrip("/")
    return [await _rehearse(plan, trengo, world, base_path) for world in WORLDS]


async def _rehearse(
    plan: Plan, trengo: TrengoConfig, world: World, base_path: str
) -> tuple[list[Received], TrengoError | None]:
    """The requests a fresh executor sends for ``plan`` to an account like ``world``."""
    account = _CannedAccount(plan, world, base_path)
    client = TrengoClient(
        trengo.base_url,
        "render",
        timeout_seconds=trengo.timeout_seconds,
        requests_per_minute=_UNLIMITED,
        transport=httpx.MockTransport(account.answer),
    )
    try:
        await PlanExecutor(client, trengo).execute(plan)
    except TrengoError as error:  # e.g. no contact found: the world ends there
        return account.received, error
    finally:
        await client.aclose()
    return account.received, None


class _CannedAccount:
    """A Trengo account that records every request and answers it as ``world`` would."""

    def __init__(self, plan: Plan, world: World, base_path: str) -> None:
        self._plan = plan
        self._world = world
        self._base_path = base_path
        self.received: list[Received] = []
        self._answers: dict[str, Callable[[httpx.Request], object]] = {
            "search_contacts": self._contacts_found,
            "create_contact": self._contact_created,
            "create_ticket": lambda _: {"id": UNKNOWN_TICKET_ID},
            "list_labels": lambda _: _page(self._labels()),
            "list_channels": lambda _: _page(self._channels()),
            "search_profiles": self._profiles_found,
            "create_profile": lambda request: {"id": UNKNOWN_PROFILE_ID, **_body(request)},
        }

    def answer(self, request: httpx.Request) -> httpx.Response:
        operation = operation_of(request, self._base_path)
        self.received.append((operation, request))
        answer = self._answers.get(operation)
        if answer is not None:
            return httpx.Response(200, json=answer(request))
        return httpx.Response(200, json=_page([]) if request.method == "GET" else {})

    def _contacts_found(self, request: httpx.Request) -> object:
        term = request.url.params["term"]
        found = {"id": UNKNOWN_ID, "name": ANOTHER_NAME, "identifier": term}
        return _page([found] if self._world.knows_contact else [])

    def _contact_created(self, request: httpx.Request) -> object:
        # An email find-or-create returns the contact Trengo has, under its name.
        name = ANOTHER_NAME if self._world.knows_contact else _body(request).get("name")
        return {"id": UNKNOWN_ID, "name": name}

    def _labels(self) -> list[dict[str, Any]]:
        labels = self._plan.labels if isinstance(self._plan, TicketPlan) else ()
        return [{"id": _label_id(name), "name": name} for name in labels]

    def _channels(self) -> list[dict[str, Any]]:
        if not isinstance(self._plan, GroupPlan):
            return []
        return [{"id": self._plan.profile.channel_id, "type": UNKNOWN_CHANNEL_TYPE}]

    def _profiles_found(self, request: httpx.Request) -> object:
        plan = self._plan
        if not (isinstance(plan, GroupPlan) and self._world.knows_profile):
            return _page([])
        if request.url.params["term"] != plan.profile.key:
            return _page([])
        key = {"custom_field_id": plan.profile.key_field_id, "value": plan.profile.key}
        return _page(
            [{"id": UNKNOWN_PROFILE_ID, "name": ANOTHER_NAME, "custom_field_values": [key]}]
        )


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": list(items), "links": {"next": None}}


def _body(request: httpx.Request) -> dict[str, Any]:
    body = json.loads(request.content) if request.content else {}
    return body if isinstance(body, dict) else {}


def _label_id(name: str) -> str:
    return f"{{label_id of '{name}'}}"


def _merged(rehearsals: list[list[Received]]) -> list[Received]:
    """Every request of any rehearsal once, in sending order: where two rehearsals part ways,
    the earlier one's requests come first."""
    merged: list[Received] = []
    for requests in rehearsals:
        matcher = SequenceMatcher(
            None, [_identity(r) for r in merged], [_identity(r) for r in requests], autojunk=False
        )
        combined: list[Received] = []
        for tag, start, end, other_start, other_end in matcher.get_opcodes():
            combined.extend(merged[start:end])
            if tag in ("insert", "replace"):
                combined.extend(requests[other_start:other_end])
        merged = combined
    return merged


def _identity(received: Received) -> tuple[str, str, bytes]:
    _, request = received
    return request.method, str(request.url), request.content


def _when(operation: str, request: httpx.Request, plan: Plan, trengo: TrengoConfig) -> str:
    """The condition under which the executor sends ``request`` for ``plan``."""
    if isinstance(plan, TicketPlan):
        return _ticket_when(operation, request, plan)
    if isinstance(plan, GroupPlan):
        return _group_when(operation, request, plan)
    return _identify_when(operation, plan, trengo)


def _searched(contact: ResolveContact, if_none: str = "") -> str:
    return (
        f"the contact id is not cached; only exact {contact.channel_identifier} matches "
        f"count{if_none}"
    )


def _ticket_when(operation: str, request: httpx.Request, plan: TicketPlan) -> str:
    if operation == "list_labels":
        return (
            "first label lookup of this process, or a label is missing from a list read more "
            f"than {REFRESH_INTERVAL_SECONDS:.0f} s ago; every page; a label still missing → "
            "dead letter, no ticket"
        )
    if operation == "search_contacts" and isinstance(plan.contact, ResolveContact):
        return _searched(plan.contact)
    if operation == "post_message":
        internal = bool(_body(request).get("internal_note"))
        audience = "an internal note" if internal else "the customer gets it"
        return f"after the ticket opened ({audience})"
    if operation == "attach_label":
        labels = {_label_id(name): name for name in plan.labels}
        return f"after the ticket opened (label '{labels[_body(request)['label_id']]}')"
    resumable = plan.event_key is not None and (plan.message is not None or bool(plan.labels))
    return {
        "create_ticket": "always (no contact found → dead letter)"
        + ("; a retry of this event after it opened opens no other" if resumable else ""),
    }[operation]


def _group_when(operation: str, request: httpx.Request, plan: GroupPlan) -> str:
    profile = plan.profile
    if operation == "search_contacts" and isinstance(plan.contact, ResolveContact):
        return _searched(plan.contact, "; none → dead letter (a group never creates a contact)")
    if operation == "search_profiles" and request.url.params["term"] == profile.key:
        return (
            f"the profile id of group {profile.key} is not cached; every page; only profiles "
            f"whose custom field {profile.key_field_id} is exactly {profile.key!r} count; "
            "several → dead letter"
        )
    return {
        "search_profiles": "the search by key confirmed none (its term may not match field "
        "values): by name, confirmed the same way",
        "create_profile": "the search found no such profile, and no earlier attempt created it",
        "set_profile_custom_field": "the profile was just created (a retry keys the profile it "
        "created)",
        "rename_profile": "the name differs from the one Trengo has (or was last sent)",
        "list_channels": f"first attach of this process: channel {profile.channel_id}'s type "
        "(the attach sends it); every page",
        "list_custom_fields": "first profile of this process whose field values Trengo keys by "
        "title: the key field's title; every page",
        "attach_contact_to_profile": "the contact is not attached already (by this process, or "
        "listed by the search)",
    }[operation]


def _identify_when(operation: str, plan: IdentifyPlan, trengo: TrengoConfig) -> str:
    contact = plan.contact
    finds_or_creates = (
        isinstance(contact, ResolveContact)
        and contact.channel_identifier == "email"
        and trengo.email_find_or_create
    )
    searches = isinstance(contact, ResolveContact) and not finds_or_creates
    if operation == "search_contacts" and isinstance(contact, ResolveContact):
        return _searched(contact)
    if operation == "create_contact":
        if contact is None:
            return "always (enableDedup is off)"
        if finds_or_creates:
            return "the contact id is not cached (Trengo returns an existing email contact)"
        return "the search found no exact match"
    if operation == "update_contact":
        name_differs = "the name differs from the one Trengo has (or was last sent)"
        return f"the search found the contact; {name_differs}" if searches else name_differs
    return {
        "set_contact_custom_field": "the value differs from the last one sent to this contact",
    }[operation]


def _shown_url(request: httpx.Request) -> str:
    shown = str(request.url)
    for placeholder in _PLACEHOLDERS:
        shown = shown.replace(quote(placeholder, safe=""), placeholder)
    return shown


_SKIP_STAGE = {"transformation": "transform"}


def _skipped(skip: Skip) -> str:
    return (
        f"skipped at {_SKIP_STAGE.get(skip.reason, 'filter')} ({skip.reason}): {skip.detail}\n"
        "→ committed without a call, counted in trengo_processor_skipped_total\nrequests: none"
    )


def _rejected(stage: str, reason: str, settings: Settings) -> str:
    return (
        f"rejected at {stage}: {reason}\n"
        f"→ dead-letter topic {settings.kafka.dead_letter_topic}\nrequests: none"
    )
