"""Ticket follow-ups: message and labels after the ticket, labels checked before it, and a
retry that continues where a failure stopped instead of opening a second ticket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from processor.config import Settings
from processor.engine.handler import KafkaRecord
from processor.pipeline.filters import EventFilter
from processor.pipeline.plan import KnownContact, TicketPlan
from processor.pipeline.prepare import RecordPreparer
from processor.pipeline.templates import EventTemplates
from processor.pipeline.transform import load_transformation
from processor.trengo.delivery import PlanExecutor
from processor.trengo.errors import PermanentError, TransientError
from tests.unit.trengo.executor_support import CHANNEL, EMAIL, routes_of, run, ticket
from tests.unit.trengo.fake_trengo import FakeTrengo, error

FIRST_ATTEMPT = [
    "GET /labels",
    "POST /tickets",
    "POST /tickets/{id}/messages",
    "POST /tickets/{id}/labels",
    "POST /tickets/{id}/labels",
]


def with_labels(*names: str) -> tuple[FakeTrengo, KnownContact, list[int]]:
    trengo = FakeTrengo()
    label_ids = [trengo.add_label(name) for name in names]
    return trengo, KnownContact(trengo.add(email=EMAIL)), label_ids


def test_a_ticket_without_follow_ups_costs_the_ticket_only() -> None:
    trengo, contact, _ = with_labels("vip")

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, ticket(contact))

    assert run(trengo, scenario) == ["POST /tickets"]


@pytest.mark.parametrize("internal_note", [True, False])
def test_the_message_follows_the_ticket(internal_note: bool) -> None:
    trengo, contact, _ = with_labels()

    async def scenario(executor: PlanExecutor) -> list[str]:
        plan = ticket(contact, message="Hi", internal_note=internal_note)
        return await routes_of(trengo, executor, plan)

    assert run(trengo, scenario) == ["POST /tickets", "POST /tickets/{id}/messages"]
    (opened,) = trengo.tickets.values()
    assert opened["contact_id"] == contact.contact_id
    assert opened["messages"] == [{"message": "Hi", "internal_note": internal_note}]


def test_labels_are_listed_once_per_process_and_matched_ignoring_case() -> None:
    trengo, contact, (vip, order) = with_labels("VIP", "order")
    plan = ticket(contact, message="Hi", labels=("vip", "Order"))

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        return [await routes_of(trengo, executor, plan) for _ in range(2)]

    assert run(trengo, scenario) == [FIRST_ATTEMPT, FIRST_ATTEMPT[1:]]
    assert [opened["labels"] for opened in trengo.tickets.values()] == [[vip, order]] * 2


def test_a_label_missing_in_trengo_opens_no_ticket() -> None:
    trengo, contact, _ = with_labels("vip")

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket(contact, message="Hi", labels=("vip", "gold")))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == "label 'gold' not found in Trengo"
    assert trengo.routes() == ["GET /labels"]
    assert trengo.tickets == {}


@pytest.mark.parametrize("failing_call", range(2, 6))
def test_a_retry_continues_after_the_step_that_failed(failing_call: int) -> None:
    trengo, contact, (vip, order) = with_labels("vip", "order")

    async def fail_once() -> None:
        if len(trengo.calls) == failing_call:
            trengo.fail_next.append(error(503))

    trengo.on_request = fail_once
    plan = ticket(contact, message="Hi", labels=("vip", "order"))

    async def scenario(executor: PlanExecutor) -> list[str]:
        with pytest.raises(TransientError):
            await executor.execute(plan)
        return await routes_of(trengo, executor, plan)

    retried = run(trengo, scenario)
    from_the_failed_step = FIRST_ATTEMPT[failing_call - 1 :]  # labels are known by now
    assert trengo.routes() == FIRST_ATTEMPT[:failing_call] + from_the_failed_step
    assert retried == from_the_failed_step
    (opened,) = trengo.tickets.values()
    assert opened["labels"] == [vip, order]
    assert opened["messages"] == [{"message": "Hi", "internal_note": True}]


def test_a_finished_event_is_forgotten_and_a_plan_without_a_key_is_not_resumable() -> None:
    trengo, contact, _ = with_labels("vip")

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket(contact, labels=("vip",)))
        await executor.execute(ticket(contact, labels=("vip",)))  # a redelivered duplicate
        trengo.failing["POST /tickets/{id}/labels"] = 503
        unkeyed = ticket(contact, labels=("vip",), event_key=None)
        with pytest.raises(TransientError):
            await executor.execute(unkeyed)
        del trengo.failing["POST /tickets/{id}/labels"]
        await executor.execute(unkeyed)

    run(trengo, scenario)
    assert len(trengo.tickets) == 4


def test_a_ticket_answer_without_an_id_stops_before_the_follow_ups() -> None:
    trengo, contact, _ = with_labels()
    trengo.fail_next.append(httpx.Response(201, json={"status": "OPEN"}))

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket(contact, message="Hi"))

    with pytest.raises(PermanentError, match="no ticket id"):
        run(trengo, scenario)
    assert trengo.routes() == ["POST /tickets"]


def test_a_404_on_a_follow_up_is_not_taken_for_a_stale_contact() -> None:
    trengo = FakeTrengo(failing={"POST /tickets/{id}/messages": 404})
    trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())  # caches the contact id
        await executor.execute(ticket(message="Hi"))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.status == 404
    assert trengo.routes() == [
        "GET /contacts",
        "POST /tickets",
        "POST /tickets",
        "POST /tickets/{id}/messages",
    ]


def test_a_stale_cached_contact_is_resolved_afresh_before_the_follow_ups() -> None:
    trengo = FakeTrengo()
    stale = trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> tuple[int, list[str]]:
        await executor.execute(ticket())  # caches `stale`
        del trengo.contacts[stale]
        fresh = trengo.add(email=EMAIL)
        trengo.calls.clear()
        return fresh, await routes_of(trengo, executor, ticket(message="Hi"))

    fresh, routes = run(trengo, scenario)
    assert routes == [
        "POST /tickets",
        "GET /contacts",
        "POST /tickets",
        "POST /tickets/{id}/messages",
    ]
    by_contact = {opened["contact_id"]: opened for opened in trengo.tickets.values()}
    assert by_contact[fresh]["messages"] == [{"message": "Hi", "internal_note": True}]


def test_a_messageid_reused_by_another_contact_never_posts_into_the_first_ones_ticket() -> None:
    trengo, first, (vip,) = with_labels("vip")
    second = KnownContact(trengo.add(email="other@example.com"))

    async def scenario(executor: PlanExecutor) -> list[str]:
        trengo.failing["POST /tickets/{id}/labels"] = 503
        with pytest.raises(TransientError):
            await executor.execute(ticket(first, labels=("vip",), event_key="reused"))
        del trengo.failing["POST /tickets/{id}/labels"]
        plan = ticket(second, labels=("vip",), event_key="reused")
        return await routes_of(trengo, executor, plan)

    assert run(trengo, scenario) == ["POST /tickets", "POST /tickets/{id}/labels"]
    assert len(trengo.tickets) == 2
    by_contact = {int(opened["contact_id"]): opened for opened in trengo.tickets.values()}
    assert by_contact[int(first.contact_id)]["labels"] == []
    assert by_contact[int(second.contact_id)]["labels"] == [vip]


def _fan_out_in_two(event: dict[str, Any], metadata: Any) -> list[dict[str, Any]]:
    """Two orders from one record: both keep its messageId, as transformations usually do."""
    return [{**event, "properties": {"order_id": order}} for order in ("A", "B")]


def _fanned_out_plans(
    transformation: str = "tests.unit.trengo.test_followups:_fan_out_in_two",
) -> list[TicketPlan]:
    settings = Settings(
        destination={
            "apiToken": "t",
            "channelId": CHANNEL,
            "eventTemplateMap": [
                {"from": "Order Completed", "to": "Order {{order_id}}", "labels": ["vip"]}
            ],
        },
        transformation={"python": transformation} if transformation else {},
    )
    preparer = RecordPreparer(
        settings,
        EventTemplates(settings.destination),
        EventFilter.from_settings(settings),
        load_transformation(settings.transformation),
    )
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "msg-1",
        "userId": "jane",
        "context": {"traits": {"email": EMAIL}},
    }
    prepared = preparer(KafkaRecord("events", 0, 7, None, json.dumps(event).encode(), (), None))
    plans = [prepared.work, *(part.work for part in prepared.more)]
    assert all(isinstance(plan, TicketPlan) for plan in plans)
    return [plan for plan in plans if isinstance(plan, TicketPlan)]


def test_the_parts_of_a_fanned_out_record_are_resumed_each_by_its_own_key() -> None:
    first, second = _fanned_out_plans()
    assert (first.event_key, second.event_key) == ("msg-1#0", "msg-1#1")
    assert first.fanned_out and second.fanned_out


@pytest.mark.parametrize("transformation", ["tests.unit.trengo.test_followups:_as_is", ""])
def test_an_event_not_fanned_out_is_resumed_by_its_messageid(transformation: str) -> None:
    (plan,) = _fanned_out_plans(transformation)
    assert (plan.event_key, plan.fanned_out) == ("msg-1", False)


def _as_is(event: dict[str, Any], metadata: Any) -> dict[str, Any]:
    return event


def test_a_retried_fanned_out_record_opens_no_second_ticket_for_any_part() -> None:
    """The first part is delivered, the second opens its ticket and fails on its label; the
    record is then delivered again whole (its offset was not committed)."""
    trengo, _, (vip,) = with_labels("vip")
    plans = _fanned_out_plans()

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        await executor.execute(plans[0])
        trengo.failing["POST /tickets/{id}/labels"] = 503
        with pytest.raises(TransientError):
            await executor.execute(plans[1])
        del trengo.failing["POST /tickets/{id}/labels"]
        return [await routes_of(trengo, executor, plan) for plan in plans]

    # the second part's label, nothing else
    assert run(trengo, scenario) == [[], ["POST /tickets/{id}/labels"]]
    opened = sorted(trengo.tickets.values(), key=lambda ticket: ticket["id"])
    assert [(ticket["subject"], ticket["labels"]) for ticket in opened] == [
        ("Order A", [vip]),
        ("Order B", [vip]),
    ]
    assert trengo.paths()[-1] == f"POST /tickets/{opened[1]['id']}/labels"
