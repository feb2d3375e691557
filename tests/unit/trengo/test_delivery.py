"""The plan executor against an in-memory Trengo: every plan kind, cache, skips, 404, and the
exact calls each plan costs."""

from __future__ import annotations

import asyncio
import re

import pytest

from processor.config import TrengoConfig
from processor.metrics import UPDATES_SKIPPED
from processor.pipeline.plan import KnownContact
from processor.trengo.delivery import PlanExecutor
from processor.trengo.errors import DestinationDown, PermanentError, TransientError
from tests.unit.trengo.executor_support import (
    CHANNEL,
    EMAIL,
    GROUP,
    KEY_FIELD,
    PHONE,
    group,
    identify,
    routes_of,
    run,
    ticket,
)
from tests.unit.trengo.fake_trengo import FakeTrengo, error, make_client, values_of
from tests.unit.trengo.simulated_time import run_simulated


def skipped(reason: str) -> float:
    return float(UPDATES_SKIPPED.labels(reason=reason)._value.get())


# Identify


def test_dedup_off_always_creates() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, identify(dedup=False, identifier=PHONE))

    assert run(trengo, scenario) == ["POST /channels/{id}/contacts"]
    assert len(trengo.contacts) == 1
    assert trengo.paths() == [f"POST /channels/{CHANNEL}/contacts"]
    assert trengo.calls[0].body == {"name": "Jane Doe", "identifier": PHONE, "channel_id": CHANNEL}


def test_known_contact_is_updated_then_skipped_when_unchanged() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Old")

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        plan = identify(contact=KnownContact(contact_id))
        return [await routes_of(trengo, executor, plan) for _ in range(2)]

    before = skipped("unchanged")
    assert run(trengo, scenario) == [["PUT /contacts/{id}"], []]
    assert trengo.paths() == [f"PUT /contacts/{contact_id}"]
    assert skipped("unchanged") - before == 1


def test_an_identify_without_a_name_sends_no_update() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Jane")

    async def scenario(executor: PlanExecutor) -> list[str]:
        plan = identify(name=None, contact=KnownContact(contact_id))
        return await routes_of(trengo, executor, plan)

    before = skipped("no_name")
    assert run(trengo, scenario) == []
    assert skipped("no_name") - before == 1


def test_email_new_contact_costs_one_call_then_the_cache_serves() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        plans = [identify(), identify(), identify(name="Jane D.")]
        return [await routes_of(trengo, executor, plan) for plan in plans]

    assert run(trengo, scenario) == [["POST /channels/{id}/contacts"], [], ["PUT /contacts/{id}"]]
    (contact_id,) = trengo.contacts
    assert trengo.paths() == [f"POST /channels/{CHANNEL}/contacts", f"PUT /contacts/{contact_id}"]
    assert trengo.contacts[contact_id]["name"] == "Jane D."


def test_email_existing_contact_under_another_name_is_renamed() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email="Jane@Example.com", name="Old name")

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, identify())

    assert run(trengo, scenario) == ["POST /channels/{id}/contacts", "PUT /contacts/{id}"]
    assert trengo.paths() == [f"POST /channels/{CHANNEL}/contacts", f"PUT /contacts/{contact_id}"]
    assert list(trengo.contacts) == [contact_id]
    assert trengo.contacts[contact_id]["name"] == "Jane Doe"


def test_email_existing_contact_with_the_name_costs_one_call() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Jane Doe")

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, identify())

    assert run(trengo, scenario) == ["POST /channels/{id}/contacts"]
    assert list(trengo.contacts) == [contact_id]  # Trengo found it: no second contact


def test_email_search_first_when_find_or_create_is_off() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Old")
    trengo.add(email="jane@example.com.au", name="Other Jane")  # a fuzzy hit, never used

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        return [await routes_of(trengo, executor, identify()) for _ in range(2)]

    assert run(trengo, scenario, TrengoConfig(email_find_or_create=False)) == [
        ["GET /contacts", "PUT /contacts/{id}"],
        [],
    ]
    assert trengo.paths() == ["GET /contacts", f"PUT /contacts/{contact_id}"]
    assert trengo.calls[0].params == {"page": "1", "term": EMAIL}


def test_phone_found_by_digits_with_trengos_name_skips_the_update() -> None:
    trengo = FakeTrengo()
    trengo.add(phone="+31 6 1234 5678", name="Jane Doe")
    trengo.add(phone="+31 6 1234 56789", name="Someone else")  # fuzzy hit: would be renamed

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, identify(identifier=PHONE, kind="phone"))

    assert run(trengo, scenario) == ["GET /contacts"]


def test_phone_not_found_is_created_and_cached() -> None:
    trengo = FakeTrengo()
    trengo.add(phone="+31 6 1234 56789", name="Someone else")  # fuzzy hit only

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        plan = identify(identifier=PHONE, kind="phone")
        return [await routes_of(trengo, executor, plan) for _ in range(2)]

    assert run(trengo, scenario) == [["GET /contacts", "POST /channels/{id}/contacts"], []]
    assert trengo.paths()[1] == f"POST /channels/{CHANNEL}/contacts"
    assert len(trengo.contacts) == 2


def test_several_exact_matches_narrow_to_the_plans_channel() -> None:
    trengo = FakeTrengo()
    trengo.add(phone="+31612345678", name="On WhatsApp", channel_id=9)
    on_sms = trengo.add(phone="+31 6 12345678", name="On SMS", channel_id=int(CHANNEL))

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, identify(identifier=PHONE, kind="phone"))

    assert run(trengo, scenario) == ["GET /contacts", "PUT /contacts/{id}"]
    assert trengo.paths()[1] == f"PUT /contacts/{on_sms}"


def test_a_created_contact_without_an_id_stops_before_its_fields() -> None:
    trengo = FakeTrengo(fail_next=[error(201, {"name": "Jane Doe"})])

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(identify(dedup=False, identifier=PHONE, fields={1: "a"}))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == "create_contact: unexpected response (no id)"
    assert trengo.routes() == ["POST /channels/{id}/contacts"]


def test_several_exact_matches_are_ambiguous() -> None:
    trengo = FakeTrengo()
    first = trengo.add(phone="+31612345678", name="A")
    second = trengo.add(phone="+31 6 12345678", name="B")

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(identify(identifier=PHONE, kind="phone"))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == (
        f"ambiguous contact: 2 exact matches for {PHONE}: ids {first}, {second}"
    )
    assert raised.value.status is None


def test_concurrent_identifies_of_one_new_contact_create_it_once() -> None:
    trengo = FakeTrengo()

    async def slow() -> None:
        await asyncio.sleep(0.05)

    trengo.on_request = slow

    async def scenario(executor: PlanExecutor) -> None:
        plan = identify(identifier=PHONE, kind="phone")
        await asyncio.gather(*(executor.execute(plan) for _ in range(3)))

    run(trengo, scenario)
    assert len(trengo.contacts) == 1
    assert trengo.paths() == ["GET /contacts", f"POST /channels/{CHANNEL}/contacts"]


# Track


def test_ticket_for_a_known_contact() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, ticket(KnownContact(contact_id), subject=""))

    assert run(trengo, scenario) == ["POST /tickets"]
    (opened,) = trengo.tickets.values()
    assert opened["contact_id"] == contact_id
    assert trengo.calls[0].body == {"contact_id": contact_id, "channel_id": CHANNEL, "subject": ""}


def test_ticket_searches_once_then_uses_the_cache() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL)
    trengo.add(email="jane@example.com.au")

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        return [await routes_of(trengo, executor, ticket()) for _ in range(3)]

    assert run(trengo, scenario) == [["GET /contacts", "POST /tickets"], *[["POST /tickets"]] * 2]
    assert {call.body["contact_id"] for call in trengo.calls[1:]} == {contact_id}


def test_an_identify_after_a_ticket_search_knows_trengos_name() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Jane Doe")

    async def scenario(executor: PlanExecutor) -> list[str]:
        await executor.execute(ticket())
        return await routes_of(trengo, executor, identify("Jane Doe"))

    assert run(trengo, scenario) == []
    assert trengo.paths() == ["GET /contacts", "POST /tickets"]
    assert trengo.calls[1].body["contact_id"] == contact_id


def test_ticket_uses_the_contact_an_identify_cached() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> list[str]:
        await executor.execute(identify())
        return await routes_of(trengo, executor, ticket())

    assert run(trengo, scenario) == ["POST /tickets"]
    assert trengo.paths() == [f"POST /channels/{CHANNEL}/contacts", "POST /tickets"]
    (contact_id,) = trengo.contacts
    assert trengo.calls[1].body["contact_id"] == contact_id


def test_ticket_without_a_contact_fails_with_rudderstacks_text() -> None:
    trengo = FakeTrengo()
    trengo.add(email="jane@example.com.au")

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())

    with pytest.raises(
        PermanentError,
        match=f"^{re.escape(f'No contact found for term:{EMAIL} track event failed')}$",
    ):
        run(trengo, scenario)
    assert trengo.paths() == ["GET /contacts"]  # a track never creates a contact


def test_ticket_with_several_exact_matches_is_ambiguous() -> None:
    trengo = FakeTrengo()
    trengo.add(email=EMAIL, channel_id=5)
    trengo.add(email=EMAIL.upper(), channel_id=6)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())

    with pytest.raises(PermanentError, match=r"^ambiguous contact: 2 exact matches"):
        run(trengo, scenario)


# A cached id that Trengo no longer knows


def test_a_422_naming_a_cached_contact_id_resolves_the_ticket_contact_afresh() -> None:
    trengo = FakeTrengo()
    stale = trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> tuple[int, list[list[str]]]:
        await executor.execute(ticket())  # caches `stale`
        del trengo.contacts[stale]  # merged away in Trengo
        fresh = trengo.add(email=EMAIL)
        trengo.calls.clear()
        return fresh, [await routes_of(trengo, executor, ticket()) for _ in range(2)]

    fresh, routes = run(trengo, scenario)
    assert routes == [["POST /tickets", "GET /contacts", "POST /tickets"], ["POST /tickets"]]
    tickets_for = [call.body["contact_id"] for call in trengo.calls if call.path == "/tickets"]
    assert tickets_for == [stale, fresh, fresh]


def test_a_404_for_a_cached_id_resolves_the_updated_contact_afresh() -> None:
    trengo = FakeTrengo()
    stale = trengo.add(phone=PHONE, name="Jane")

    async def scenario(executor: PlanExecutor) -> int:
        await executor.execute(identify("Jane", identifier=PHONE, kind="phone"))  # caches it
        del trengo.contacts[stale]
        fresh = trengo.add(phone=PHONE, name="Jane")
        trengo.calls.clear()
        await executor.execute(identify("Jane D.", identifier=PHONE, kind="phone"))
        return fresh

    fresh = run(trengo, scenario)
    assert trengo.paths() == [f"PUT /contacts/{stale}", "GET /contacts", f"PUT /contacts/{fresh}"]
    assert trengo.contacts[fresh]["name"] == "Jane D."


def test_a_404_for_a_freshly_resolved_id_is_permanent() -> None:
    trengo = FakeTrengo(failing={"POST /tickets": 404})
    trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.status == 404
    assert trengo.paths() == ["GET /contacts", "POST /tickets"]  # no second resolution


def test_a_422_that_does_not_name_the_contact_keeps_the_cached_id() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL)
    subject_too_long = "The subject may not be greater than 255 characters."

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())  # caches the contact
        trengo.calls.clear()
        trengo.fail_next.append(error(422, {"message": subject_too_long}))
        with pytest.raises(PermanentError) as raised:
            await executor.execute(ticket())
        assert raised.value.status == 422
        await executor.execute(ticket())

    run(trengo, scenario)
    assert trengo.paths() == ["POST /tickets", "POST /tickets"]  # no search: the id is good
    assert [call.body["contact_id"] for call in trengo.calls] == [contact_id, contact_id]


def test_a_422_naming_the_contact_of_a_freshly_resolved_id_is_permanent() -> None:
    trengo = FakeTrengo()
    trengo.add(email=EMAIL)
    invalid = "The selected contact id is invalid."
    trengo.fail_next.extend(
        [
            error(200, {"data": [*trengo.contacts.values()], "links": {}}),
            error(422, {"message": invalid, "errors": {"contact_id": [invalid]}}),
        ]
    )

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.status == 422
    assert trengo.paths() == ["GET /contacts", "POST /tickets"]  # no second resolution


def test_a_404_for_a_known_contact_id_is_permanent() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(identify(contact=KnownContact(424242)))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.status == 404
    assert len(trengo.calls) == 1


# Errors pass through with their class


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, DestinationDown),
        (403, DestinationDown),
        (500, TransientError),
        (429, TransientError),
        (422, PermanentError),
    ],
)
def test_trengo_errors_propagate(status: int, error_class: type[Exception]) -> None:
    trengo = FakeTrengo(fail_next=[error(status)])

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(ticket())

    with pytest.raises(error_class):
        run(trengo, scenario)


def test_a_retry_after_a_transient_failure_reuses_the_resolved_id() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> list[str]:
        trengo.failing["POST /tickets"] = 503
        with pytest.raises(TransientError):
            await executor.execute(ticket())
        del trengo.failing["POST /tickets"]
        return await routes_of(trengo, executor, ticket())

    assert run(trengo, scenario) == ["POST /tickets"]
    assert trengo.paths() == ["GET /contacts", "POST /tickets", "POST /tickets"]
    assert [call.body["contact_id"] for call in trengo.calls[1:]] == [contact_id, contact_id]


def test_probe_makes_one_authenticated_call() -> None:
    trengo = FakeTrengo(fail_next=[error(401)])

    async def scenario(executor: PlanExecutor) -> None:
        with pytest.raises(DestinationDown):
            await executor.probe()
        await executor.probe()

    run(trengo, scenario)
    assert trengo.paths() == ["GET /contacts", "GET /contacts"]


def test_cache_can_be_turned_off() -> None:
    trengo = FakeTrengo()
    trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        return [await routes_of(trengo, executor, ticket()) for _ in range(2)]

    async def main() -> list[list[str]]:
        async with make_client(trengo.handle) as client:
            config = TrengoConfig(contact_cache_size=0)
            return await scenario(PlanExecutor(client, config))

    assert run_simulated(main()) == [["GET /contacts", "POST /tickets"]] * 2


# Identify: custom fields


def test_custom_fields_are_sent_once_then_only_when_their_value_changes() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        fields = {1001: "pro", 1002: "Acme"}
        plans = [
            identify(fields=fields),
            identify(fields=fields),
            identify(fields={**fields, 1001: "enterprise"}),
        ]
        return [await routes_of(trengo, executor, plan) for plan in plans]

    assert run(trengo, scenario) == [
        ["POST /channels/{id}/contacts", *["POST /contacts/{id}/custom_fields"] * 2],
        [],
        ["POST /contacts/{id}/custom_fields"],
    ]
    (contact_id,) = trengo.contacts
    assert {call.path for call in trengo.calls[1:]} == {f"/contacts/{contact_id}/custom_fields"}
    assert [call.body for call in trengo.calls[1:]] == [
        {"custom_field_id": 1001, "value": "pro"},
        {"custom_field_id": 1002, "value": "Acme"},
        {"custom_field_id": 1001, "value": "enterprise"},
    ]
    assert values_of(trengo.contacts[contact_id]) == {1001: "enterprise", 1002: "Acme"}


def test_a_renamed_contact_with_a_changed_field_costs_both_calls() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Old")

    async def scenario(executor: PlanExecutor) -> list[str]:
        plan = identify(contact=KnownContact(contact_id), fields={1: "a"})
        return await routes_of(trengo, executor, plan)

    assert run(trengo, scenario) == ["PUT /contacts/{id}", "POST /contacts/{id}/custom_fields"]
    assert trengo.paths() == [
        f"PUT /contacts/{contact_id}",
        f"POST /contacts/{contact_id}/custom_fields",
    ]


def test_dedup_off_creates_then_sets_the_fields() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> list[str]:
        plan = identify(dedup=False, identifier=PHONE, fields={1: "a"})
        return await routes_of(trengo, executor, plan)

    assert run(trengo, scenario) == [
        "POST /channels/{id}/contacts",
        "POST /contacts/{id}/custom_fields",
    ]
    (contact_id,) = trengo.contacts
    assert values_of(trengo.contacts[contact_id]) == {1: "a"}


def test_a_field_value_is_remembered_only_once_trengo_accepted_it() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL, name="Jane Doe")
    known = KnownContact(contact_id)

    async def scenario(executor: PlanExecutor) -> list[str]:
        await executor.execute(identify(contact=known, fields={1001: "pro"}))
        trengo.failing["POST /contacts/{id}/custom_fields"] = 503
        with pytest.raises(TransientError):
            await executor.execute(identify(contact=known, fields={1001: "pro", 1002: "Acme"}))
        del trengo.failing["POST /contacts/{id}/custom_fields"]
        plan = identify(contact=known, fields={1001: "pro", 1002: "Acme"})
        return await routes_of(trengo, executor, plan)

    assert run(trengo, scenario) == ["POST /contacts/{id}/custom_fields"]
    assert [call.body["custom_field_id"] for call in trengo.calls[1:]] == [1001, 1002, 1002]
    assert values_of(trengo.contacts[contact_id]) == {1001: "pro", 1002: "Acme"}


def test_a_404_setting_a_field_of_a_cached_id_resolves_the_contact_afresh() -> None:
    trengo = FakeTrengo()
    stale = trengo.add(phone=PHONE, name="Jane")
    plan = identify("Jane", identifier=PHONE, kind="phone", fields={1001: "pro"})

    async def scenario(executor: PlanExecutor) -> int:
        await executor.execute(identify("Jane", identifier=PHONE, kind="phone"))  # caches it
        del trengo.contacts[stale]
        fresh = trengo.add(phone=PHONE, name="Jane")
        trengo.calls.clear()
        await executor.execute(plan)
        return fresh

    fresh = run(trengo, scenario)
    assert trengo.paths() == [
        f"POST /contacts/{stale}/custom_fields",
        "GET /contacts",
        f"POST /contacts/{fresh}/custom_fields",
    ]
    assert values_of(trengo.contacts[fresh]) == {1001: "pro"}


# Group: the contact must exist


def test_a_group_for_an_unknown_contact_fails_naming_the_group() -> None:
    trengo = FakeTrengo()

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group())

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == (
        f"No contact found for term:{EMAIL} group event for group {GROUP} failed"
    )
    assert trengo.paths() == ["GET /contacts"]  # a group never creates a contact or profile


def test_a_group_resolves_its_contact_once_then_from_the_cache() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        return [await routes_of(trengo, executor, group()) for _ in range(2)]

    first, again = run(trengo, scenario)
    assert first == [
        "GET /contacts",
        "GET /profiles",  # by key
        "GET /profiles",  # by name
        "POST /profiles",
        "POST /profiles/{id}/custom_fields",
        "GET /channels",
        "POST /profiles/{id}/contacts",
    ]
    assert again == []
    (profile,) = trengo.profiles.values()
    assert profile["contacts"] == [{"id": contact_id}]


def test_a_404_attaching_a_cached_contact_resolves_it_afresh() -> None:
    trengo = FakeTrengo()
    stale = trengo.add(email=EMAIL)
    profile_id = trengo.add_profile("Acme", {KEY_FIELD: GROUP})

    async def scenario(executor: PlanExecutor) -> tuple[int, list[str]]:
        await executor.execute(ticket())  # caches `stale`
        del trengo.contacts[stale]
        fresh = trengo.add(email=EMAIL)
        trengo.calls.clear()
        return fresh, await routes_of(trengo, executor, group())

    fresh, routes = run(trengo, scenario)
    assert routes == [
        "GET /profiles",
        "GET /channels",  # the channel's type, once per process
        "POST /profiles/{id}/contacts",  # 404: the contact is gone
        "GET /contacts",
        "POST /profiles/{id}/contacts",
    ]
    assert trengo.profiles[profile_id]["contacts"] == [{"id": fresh}]
