"""Profiles of groups: found by exact key, created and keyed once, renamed, attached once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from processor.config import TrengoConfig
from processor.pipeline.plan import KnownContact
from processor.trengo.delivery import PlanExecutor
from processor.trengo.errors import PermanentError, TransientError
from tests.unit.trengo.executor_support import EMAIL, GROUP, KEY_FIELD, group, routes_of, run
from tests.unit.trengo.fake_trengo import FakeTrengo, values_of

KEYED = {KEY_FIELD: GROUP}
SEARCHES = ["GET /profiles", "GET /profiles"]  # by key, then by name
CREATE_AND_ATTACH = [
    *SEARCHES,
    "POST /profiles",
    "POST /profiles/{id}/custom_fields",
    "GET /channels",  # the channel's type for the attach, once per process
    "POST /profiles/{id}/contacts",
]


def known(trengo: FakeTrengo, name: str = "Jane") -> KnownContact:
    return KnownContact(trengo.add(email=f"{name.lower()}@example.com", name=name))


def members(trengo: FakeTrengo, profile_id: int) -> list[int]:
    """The ids of the contacts attached to profile ``profile_id``, in order."""
    return [contact["id"] for contact in trengo.profiles[profile_id]["contacts"]]


def test_a_new_group_creates_keys_and_attaches_then_costs_nothing() -> None:
    trengo = FakeTrengo()
    jane, john = known(trengo, "Jane"), known(trengo, "John")

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        plans = [group(jane), group(jane), group(john)]
        return [await routes_of(trengo, executor, plan) for plan in plans]

    assert run(trengo, scenario) == [CREATE_AND_ATTACH, [], ["POST /profiles/{id}/contacts"]]
    (profile_id,) = trengo.profiles
    assert [call.params for call in trengo.calls[:2]] == [
        {"page": "1", "term": GROUP},
        {"page": "1", "term": "Acme"},
    ]
    assert [call.body for call in trengo.calls if call.path.endswith("/contacts")] == [
        {"contact_id": jane.contact_id, "type": "EMAIL"},
        {"contact_id": john.contact_id, "type": "EMAIL"},
    ]
    assert trengo.profiles[profile_id] == {
        "id": profile_id,
        "name": "Acme",
        "custom_field_data": {"External ID": GROUP},
        "custom_field_values": [
            {"custom_field_id": KEY_FIELD, "field_name": "External ID", "value": GROUP}
        ],
        "contacts": [{"id": jane.contact_id}, {"id": john.contact_id}],
    }


def test_a_profile_listing_the_contact_under_its_name_costs_the_search_only() -> None:
    trengo = FakeTrengo()
    jane = known(trengo)
    profile_id = trengo.add_profile("Acme", KEYED)
    trengo.profiles[profile_id]["contacts"] = [{"id": jane.contact_id, "name": "Jane"}]

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, group(jane))

    assert run(trengo, scenario) == ["GET /profiles"]
    assert members(trengo, profile_id) == [jane.contact_id]


def test_a_profile_under_another_name_is_renamed_once() -> None:
    trengo = FakeTrengo()
    jane = known(trengo)
    profile_id = trengo.add_profile("Acme (old)", KEYED)

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        plans = [group(jane), group(jane), group(jane, name="Acme Inc")]
        return [await routes_of(trengo, executor, plan) for plan in plans]

    assert run(trengo, scenario) == [
        ["GET /profiles", "PUT /profiles/{id}", "GET /channels", "POST /profiles/{id}/contacts"],
        [],
        ["PUT /profiles/{id}"],
    ]
    assert trengo.profiles[profile_id]["name"] == "Acme Inc"
    assert members(trengo, profile_id) == [jane.contact_id]


def test_only_an_exact_key_matches_across_pages() -> None:
    trengo = FakeTrengo(page_size=2)
    jane = known(trengo)
    for name, key in [("acme-1 GmbH", None), ("B", {KEY_FIELD: "acme-10"})]:
        trengo.add_profile(name, key)
    trengo.add_profile("C", {999: GROUP})  # the key in another field
    trengo.add_profile("D", {KEY_FIELD: "ACME-1"})  # keys are exact, case included
    wanted = trengo.add_profile("Acme", KEYED)

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, group(jane))

    assert run(trengo, scenario) == [
        *["GET /profiles"] * 3,
        "GET /channels",
        "POST /profiles/{id}/contacts",
    ]
    assert [call.params.get("page") for call in trengo.calls] == ["1", "2", "3", "1", None]
    assert members(trengo, wanted) == [jane.contact_id]


def test_several_profiles_with_the_key_are_ambiguous() -> None:
    trengo = FakeTrengo()
    jane = known(trengo)
    first, second = trengo.add_profile("Acme", KEYED), trengo.add_profile("Acme 2", KEYED)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group(jane))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == (
        f"ambiguous profile: 2 profiles have custom field {KEY_FIELD} = {GROUP}: "
        f"ids {first}, {second}"
    )
    assert trengo.routes() == ["GET /profiles"]


@pytest.mark.parametrize("config", [TrengoConfig(), TrengoConfig(contact_cache_size=0)])
def test_a_retry_keys_the_profile_it_created_instead_of_creating_another(
    config: TrengoConfig,
) -> None:
    trengo = FakeTrengo()
    jane = known(trengo)

    async def scenario(executor: PlanExecutor) -> list[str]:
        trengo.failing["POST /profiles/{id}/custom_fields"] = 503
        with pytest.raises(TransientError):
            await executor.execute(group(jane))
        del trengo.failing["POST /profiles/{id}/custom_fields"]
        return await routes_of(trengo, executor, group(jane))

    retried = run(trengo, scenario, config)
    (profile_id,) = trengo.profiles
    assert trengo.routes()[: -len(retried)] == [
        *SEARCHES,
        "POST /profiles",
        "POST /profiles/{id}/custom_fields",  # 503
    ]
    assert retried == [
        *SEARCHES,
        "POST /profiles/{id}/custom_fields",
        "GET /channels",
        "POST /profiles/{id}/contacts",
    ]
    assert values_of(trengo.profiles[profile_id]) == KEYED
    assert members(trengo, profile_id) == [jane.contact_id]


def test_a_cached_profile_deleted_in_trengo_is_found_afresh() -> None:
    trengo = FakeTrengo()
    jane, john = known(trengo, "Jane"), known(trengo, "John")

    async def scenario(executor: PlanExecutor) -> list[str]:
        await executor.execute(group(jane))
        trengo.profiles.clear()
        return await routes_of(trengo, executor, group(john))

    routes = run(trengo, scenario)
    (profile_id,) = trengo.profiles
    assert members(trengo, profile_id) == [john.contact_id]
    assert routes == [
        "POST /profiles/{id}/contacts",
        *[route for route in CREATE_AND_ATTACH if route != "GET /channels"],
    ]


def test_concurrent_groups_of_one_key_create_one_profile() -> None:
    trengo = FakeTrengo()
    people = [known(trengo, name) for name in ("Ann", "Bob", "Cy")]

    async def slow() -> None:
        await asyncio.sleep(0.05)

    trengo.on_request = slow

    async def scenario(executor: PlanExecutor) -> None:
        await asyncio.gather(*(executor.execute(group(m)) for m in people))

    run(trengo, scenario)
    (profile_id,) = trengo.profiles
    assert sorted(members(trengo, profile_id)) == [person.contact_id for person in people]
    assert trengo.routes().count("POST /profiles") == 1


def test_with_caches_off_every_group_searches_but_trusts_the_listed_contacts() -> None:
    trengo = FakeTrengo()
    jane = known(trengo)

    async def scenario(executor: PlanExecutor) -> list[list[str]]:
        return [await routes_of(trengo, executor, group(jane)) for _ in range(2)]

    config = TrengoConfig(contact_cache_size=0)
    assert run(trengo, scenario, config) == [CREATE_AND_ATTACH, ["GET /profiles"]]


def test_the_group_contact_is_the_one_the_plan_names() -> None:
    trengo = FakeTrengo()
    contact_id = trengo.add(email=EMAIL)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group())

    run(trengo, scenario)
    (profile_id,) = trengo.profiles
    assert trengo.profiles[profile_id]["contacts"] == [{"id": contact_id}]


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(
            {"custom_field_values": [{"custom_field_id": KEY_FIELD, "value": GROUP}]}, id="values"
        ),
        pytest.param(
            {
                "custom_fields": [
                    {"id": KEY_FIELD, "pivot": {"custom_field_id": KEY_FIELD, "value": GROUP}}
                ]
            },
            id="pivot",
        ),
        pytest.param({"custom_field_data": {str(KEY_FIELD): GROUP}}, id="data-by-id"),
        pytest.param({"custom_field_data": {"External ID": GROUP}}, id="data-by-title"),
    ],
)
def test_the_key_is_read_wherever_trengo_puts_it(shape: dict[str, object]) -> None:
    trengo = FakeTrengo()
    jane = known(trengo)
    profile_id = trengo.add_profile("Acme")
    trengo.profiles[profile_id].update({"custom_field_data": None, "custom_field_values": []})
    trengo.profiles[profile_id].update(shape)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group(jane))

    run(trengo, scenario)
    assert members(trengo, profile_id) == [jane.contact_id]
    assert "POST /profiles" not in trengo.routes()
    title_lookups = trengo.routes().count("GET /custom_fields")
    assert title_lookups == (1 if "External ID" in str(shape) else 0)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([{"custom_field_id": 999, "value": GROUP}], id="another-field"),
        pytest.param([{"custom_field_id": KEY_FIELD, "value": True}], id="not-text"),
        pytest.param("garbage", id="not-a-list"),
        pytest.param([None, 7, {"custom_field_id": None}], id="junk-entries"),
    ],
)
def test_hostile_field_values_never_match_the_key(values: object) -> None:
    trengo = FakeTrengo()
    jane = known(trengo)
    trengo.add_profile("Acme")
    trengo.profiles[9001].update(
        {"custom_field_data": {"Other": GROUP}, "custom_field_values": values}
    )

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group(jane))

    run(trengo, scenario)
    assert trengo.routes().count("POST /profiles") == 1
    created = max(trengo.profiles)
    assert (members(trengo, 9001), members(trengo, created)) == ([], [jane.contact_id])


def test_a_search_that_ignores_field_values_finds_the_profile_by_name() -> None:
    trengo = FakeTrengo(profile_term_matches_values=False)
    jane = known(trengo)
    trengo.add_profile("Acme", {KEY_FIELD: "another-group"})  # same name, other key
    wanted = trengo.add_profile("Acme", KEYED)

    async def scenario(executor: PlanExecutor) -> list[str]:
        return await routes_of(trengo, executor, group(jane))

    assert run(trengo, scenario) == [*SEARCHES, "GET /channels", "POST /profiles/{id}/contacts"]
    assert members(trengo, wanted) == [jane.contact_id]
    assert len(trengo.profiles) == 2


def test_a_created_profile_without_an_id_is_not_keyed() -> None:
    trengo = FakeTrengo()
    jane = known(trengo)
    answer_without_id = httpx.Response(200, json={"name": "Acme"})
    trengo.fail_next.extend([_ok_empty_page(), _ok_empty_page(), answer_without_id])

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group(jane))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == "create_profile: unexpected response (no id)"
    assert trengo.routes() == [*SEARCHES, "POST /profiles"]


def test_a_failed_name_search_creates_nothing() -> None:
    trengo = FakeTrengo(profile_term_matches_values=False)
    jane = known(trengo)

    async def scenario(executor: PlanExecutor) -> None:
        trengo.fail_next.extend([_ok_empty_page(), _server_error()])
        await executor.execute(group(jane))

    with pytest.raises(TransientError):
        run(trengo, scenario)
    assert trengo.routes() == SEARCHES
    assert not trengo.profiles


def test_a_channel_trengo_does_not_list_is_a_permanent_error_before_attaching() -> None:
    trengo = FakeTrengo(channels=[{"id": 2, "type": "WA_BUSINESS"}])
    jane = known(trengo)
    trengo.add_profile("Acme", KEYED)

    async def scenario(executor: PlanExecutor) -> None:
        await executor.execute(group(jane))

    with pytest.raises(PermanentError) as raised:
        run(trengo, scenario)
    assert raised.value.reason == "channel 1 not found in GET /channels (no type)"
    assert "POST /profiles/{id}/contacts" not in trengo.routes()


def _ok_empty_page() -> httpx.Response:
    return httpx.Response(200, json={"data": [], "links": {"next": None}})


def _server_error() -> httpx.Response:
    return httpx.Response(503, json={"message": "Service Unavailable"})


def test_groups_of_different_companies_at_once_list_the_channels_once() -> None:
    trengo = FakeTrengo()
    people = [known(trengo, name) for name in ("Ann", "Bob", "Cy")]

    async def slow() -> None:
        await asyncio.sleep(0.01)

    trengo.on_request = slow

    async def scenario(executor: PlanExecutor) -> None:
        plans = [group(m, key=f"co-{n}", name=f"Co {n}") for n, m in enumerate(people)]
        await asyncio.gather(*(executor.execute(plan) for plan in plans))

    run(trengo, scenario)
    by_name = {profile["name"]: profile["id"] for profile in trengo.profiles.values()}
    assert {name: members(trengo, pid) for name, pid in by_name.items()} == {
        f"Co {n}": [person.contact_id] for n, person in enumerate(people)
    }
    assert trengo.routes().count("GET /channels") == 1
    assert trengo.routes().count("POST /profiles/{id}/contacts") == 3
