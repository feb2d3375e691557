"""Running a ``PlanExecutor`` against the in-memory Trengo, and the plans the tests send it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from processor.config import TrengoConfig
from processor.pipeline.plan import (
    ChannelIdentifier,
    ContactRef,
    CreateContact,
    CreateTicket,
    GroupPlan,
    IdentifyPlan,
    KnownContact,
    Plan,
    PostMessage,
    ResolveContact,
    ResolveProfile,
    SetCustomField,
    TicketPlan,
    UpdateContact,
)
from processor.trengo.delivery import PlanExecutor
from tests.unit.trengo.fake_trengo import FakeTrengo, make_client
from tests.unit.trengo.simulated_time import run_simulated

T = TypeVar("T")
CHANNEL = "1"
EMAIL = "jane@example.com"
PHONE = "31612345678"
KEY_FIELD = 2001
GROUP = "acme-1"

Scenario = Callable[[PlanExecutor], Awaitable[T]]


def run(
    trengo: FakeTrengo, scenario: Scenario[T], config: TrengoConfig | None = None, **options: Any
) -> T:
    """Run ``scenario`` with an executor whose client talks to ``trengo``, on simulated time
    (``asyncio.sleep(61)`` in a scenario moves the executor's clock too)."""

    async def main() -> T:
        clock = asyncio.get_running_loop().time
        async with make_client(trengo.handle) as client:
            executor = PlanExecutor(client, config or TrengoConfig(), clock=clock, **options)
            return await scenario(executor)

    return run_simulated(main())


async def routes_of(trengo: FakeTrengo, executor: PlanExecutor, plan: Plan) -> list[str]:
    """Carry out ``plan``; the routes of the calls it made to ``trengo`` (``[]``: none)."""
    made_before = len(trengo.calls)
    await executor.execute(plan)
    return trengo.routes()[made_before:]


def resolve(identifier: str = EMAIL, kind: ChannelIdentifier = "email") -> ResolveContact:
    return ResolveContact(identifier=identifier, channel_identifier=kind, channel_id=CHANNEL)


def identify(
    name: str | None = "Jane Doe",
    contact: ContactRef | None = None,
    identifier: str = EMAIL,
    kind: ChannelIdentifier = "email",
    dedup: bool = True,
    fields: dict[int, str] | None = None,
) -> IdentifyPlan:
    if contact is None and dedup:
        contact = resolve(identifier, kind)
    create = None if isinstance(contact, KnownContact) else CreateContact(CHANNEL, identifier, name)
    custom_fields = tuple(SetCustomField(field, value) for field, value in (fields or {}).items())
    return IdentifyPlan(
        contact=contact, update=UpdateContact(name), create=create, custom_fields=custom_fields
    )


def ticket(
    contact: ContactRef | None = None,
    subject: str | None = "Order 5",
    message: str | None = None,
    internal_note: bool = True,
    labels: tuple[str, ...] = (),
    event_key: str | None = "msg-1",
) -> TicketPlan:
    return TicketPlan(
        "Order Completed",
        contact or resolve(),
        CreateTicket(CHANNEL, subject),
        message=PostMessage(message, internal_note) if message is not None else None,
        labels=labels,
        event_key=event_key,
    )


def group(contact: ContactRef | None = None, name: str = "Acme", key: str = GROUP) -> GroupPlan:
    return GroupPlan(key, contact or resolve(), ResolveProfile(key, KEY_FIELD, name, CHANNEL))
