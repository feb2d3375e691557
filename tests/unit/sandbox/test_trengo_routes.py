"""The issue 10 routes over HTTP: custom fields, profiles, labels, ticket messages.

Each test serves ``create_app`` on an aiohttp test server (loopback, a clock the tests move by
hand), so the whole request pipeline (auth, rate limit, faults, recording) applies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devkit.sandbox._trengo_model import laravel_timestamp
from devkit.sandbox._trengo_profiles import profile_timestamp
from devkit.sandbox.trengo import (
    DEFAULT_CHANNELS,
    FIRST_LABEL_ID,
    FIRST_MESSAGE_ID,
    FIRST_PROFILE_ID,
    STATE_KEY,
    ManualClock,
    SandboxCustomField,
    SandboxOptions,
    SandboxState,
    create_app,
)

TOKEN = "token-a"
OPTIONS = SandboxOptions(tokens=(TOKEN,))
EMAIL, WHATSAPP = DEFAULT_CHANNELS
PLAN, COMPANY, EXTERNAL_ID = 1001, 1002, 2001
LEAD, ORDER, VIP, SUPPORT = range(FIRST_LABEL_ID, FIRST_LABEL_ID + 4)
UNKNOWN_ID = 12345
MANY = 30  # more than one page of 25


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]  # case-insensitive


class SandboxApi:
    """The sandbox's ``/api/v2`` through a test client, with a valid token unless told."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self._client = client

    @property
    def state(self) -> SandboxState:
        return self._client.app[STATE_KEY]

    async def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: dict[str, str] | None = None,
        token: str | None = TOKEN,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Page links are absolute; the test client takes paths.
        link = urlsplit(path)
        url = f"{link.path}?{link.query}" if link.scheme else f"/api/v2{path}"
        async with self._client.request(
            method, url, json=body, params=params, headers=headers
        ) as response:
            return Answer(response.status, await response.json(), response.headers.copy())

    async def contact(self, identifier: str = "jo@example.com", name: str = "Jo") -> int:
        answer = await self.call(
            "POST", f"/channels/{EMAIL.id}/contacts", {"identifier": identifier, "name": name}
        )
        assert answer.status in {200, 201}
        contact_id: int = answer.body["id"]
        return contact_id

    async def ticket(self) -> int:
        body = {"channel_id": EMAIL.id, "contact_id": await self.contact()}
        answer = await self.call("POST", "/tickets", body)
        assert answer.status == 201
        ticket_id: int = answer.body["id"]
        return ticket_id

    async def profile(self, name: str = "Acme", key: str | None = None) -> int:
        answer = await self.call("POST", "/profiles", {"name": name})
        assert answer.status == 200
        profile_id: int = answer.body["id"]
        if key is not None:
            field = {"custom_field_id": EXTERNAL_ID, "value": key}
            answer = await self.call("POST", f"/profiles/{profile_id}/custom_fields", field)
            assert answer.status == 200
        return profile_id


OpenApi = Callable[[SandboxOptions], Awaitable[SandboxApi]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def open_api(clock: ManualClock) -> AsyncIterator[OpenApi]:
    async with AsyncExitStack() as stack:

        async def open_with(options: SandboxOptions) -> SandboxApi:
            app = create_app(options, clock.as_sandbox_clock())
            client = await stack.enter_async_context(TestClient(TestServer(app)))
            return SandboxApi(client)

        yield open_with


@pytest.fixture
async def api(open_api: OpenApi) -> SandboxApi:
    return await open_api(OPTIONS)


def assert_422(answer: Answer, field: str, message: str) -> None:
    assert answer.status == 422
    assert answer.body == {"message": message, "errors": {field: [message]}}


def assert_404(answer: Answer, model: str, record_id: int) -> None:
    assert answer.status == 404
    assert answer.body == {
        "message": f"No query results for model [App\\Models\\{model}] {record_id}"
    }


# --- contact custom fields --------------------------------------------------------------------


async def test_contact_custom_fields_are_keyed_by_title_with_ids_alongside(api: SandboxApi) -> None:
    created = await api.call("POST", f"/channels/{EMAIL.id}/contacts", {"identifier": "a@b.c"})
    path = f"/contacts/{created.body['id']}/custom_fields"

    first = await api.call("POST", path, {"custom_field_id": PLAN, "value": "pro"})
    await api.call("POST", path, {"custom_field_id": str(COMPANY), "value": " Acme "})
    replaced = await api.call("POST", path, {"custom_field_id": PLAN, "value": "enterprise"})

    assert created.body["custom_field_data"] is None
    assert (first.status, first.body["id"]) == (200, created.body["id"])
    assert first.body["custom_field_data"] == {"Plan": "pro"}
    assert replaced.body["custom_field_data"] == {"Plan": "enterprise", "Company": "Acme"}
    assert replaced.body["custom_field_values"] == [
        {"custom_field_id": PLAN, "field_name": "Plan", "value": "enterprise"},
        {"custom_field_id": COMPANY, "field_name": "Company", "value": "Acme"},
    ]
    assert {"channels", "groups"} <= replaced.body.keys()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"value": "x"}, "custom_field_id", "The custom field id field is required."),
        (
            {"custom_field_id": EXTERNAL_ID, "value": "x"},
            "custom_field_id",
            "The selected custom field id is invalid.",
        ),
        (
            {"custom_field_id": UNKNOWN_ID, "value": "x"},
            "custom_field_id",
            "The selected custom field id is invalid.",
        ),
        (
            {"custom_field_id": "plan", "value": "x"},
            "custom_field_id",
            "The custom field id field must be an integer.",
        ),
        ({"custom_field_id": PLAN}, "value", "The value field is required."),
        ({"custom_field_id": PLAN, "value": "  "}, "value", "The value field is required."),
        ({"custom_field_id": PLAN, "value": 5}, "value", "The value field must be a string."),
    ],
)
async def test_contact_custom_field_validation(
    api: SandboxApi, body: dict[str, object], field: str, message: str
) -> None:
    contact = await api.contact()

    answer = await api.call("POST", f"/contacts/{contact}/custom_fields", body)

    assert_422(answer, field, message)
    assert api.state.data.contacts[contact].field_values == {}


async def test_contact_custom_field_of_an_unknown_contact_is_404_before_validation(
    api: SandboxApi,
) -> None:
    answer = await api.call("POST", f"/contacts/{UNKNOWN_ID}/custom_fields", {})

    assert_404(answer, "Contact", UNKNOWN_ID)


async def test_custom_fields_list_every_configured_field(api: SandboxApi) -> None:
    answer = await api.call("GET", "/custom_fields")

    assert answer.status == 200
    assert answer.body["data"] == [
        {"id": PLAN, "title": "Plan", "type": "CONTACT", "field_type": "TEXT"},
        {"id": COMPANY, "title": "Company", "type": "CONTACT", "field_type": "TEXT"},
        {"id": EXTERNAL_ID, "title": "External ID", "type": "PROFILE", "field_type": "TEXT"},
        {"id": 3001, "title": "Order reference", "type": "TICKET", "field_type": "TEXT"},
    ]
    assert answer.body["links"]["next"] is None


async def test_custom_fields_are_paginated(open_api: OpenApi) -> None:
    fields = tuple(
        SandboxCustomField(id=n, title=f"F{n}", type="CONTACT") for n in range(1, MANY + 1)
    )
    api = await open_api(SandboxOptions(tokens=(TOKEN,), custom_fields=fields))

    first = await api.call("GET", "/custom_fields")
    second = await api.call("GET", first.body["links"]["next"])

    assert [f["id"] for f in first.body["data"] + second.body["data"]] == list(range(1, MANY + 1))
    assert (second.body["meta"]["current_page"], second.body["links"]["next"]) == (2, None)


# --- profiles ---------------------------------------------------------------------------------


async def test_create_profile_answers_the_captured_profile_shape(
    api: SandboxApi, clock: ManualClock
) -> None:
    answer = await api.call("POST", "/profiles", {"name": " Acme Inc "})

    assert answer.status == 200
    assert answer.body == {
        "id": FIRST_PROFILE_ID,
        "name": "Acme Inc",
        "abbr": "A",
        "color": answer.body["color"],
        "created_at": profile_timestamp(clock.wall),
        "user": None,
        "notes": [],
        "custom_field_data": None,
        "custom_field_values": [],
        "custom_fields": [],
        "contacts": [],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "The name field is required."),
        ({"name": "   "}, "The name field is required."),
        ({"name": 3}, "The name field must be a string."),
    ],
)
async def test_create_profile_needs_a_name(
    api: SandboxApi, body: dict[str, object], message: str
) -> None:
    answer = await api.call("POST", "/profiles", body)

    assert_422(answer, "name", message)
    assert api.state.profiles.by_id == {}


async def test_rename_profile(api: SandboxApi, clock: ManualClock) -> None:
    profile = await api.profile("Old Name")
    clock.advance(60)

    answer = await api.call("PUT", f"/profiles/{profile}", {"name": "New Name"})

    assert answer.status == 200
    assert (answer.body["id"], answer.body["name"]) == (profile, "New Name")
    assert answer.body["created_at"] == profile_timestamp(clock.wall - 60)


@pytest.mark.parametrize(
    ("profile", "body", "status"),
    [("unknown", {"name": "X"}, 404), ("unknown", {}, 404), ("known", {}, 422)],
)
async def test_rename_profile_errors(
    api: SandboxApi, profile: str, body: dict[str, object], status: int
) -> None:
    known = await api.profile()
    profile_id = known if profile == "known" else UNKNOWN_ID

    answer = await api.call("PUT", f"/profiles/{profile_id}", body)

    assert answer.status == status
    assert "message" in answer.body


async def test_profile_custom_field_is_set(api: SandboxApi) -> None:
    profile = await api.profile()

    answer = await api.call(
        "POST",
        f"/profiles/{profile}/custom_fields",
        {"custom_field_id": EXTERNAL_ID, "value": "acme-1"},
    )

    assert answer.status == 200
    assert answer.body["custom_field_data"] == {"External ID": "acme-1"}
    assert answer.body["custom_field_values"] == [
        {"custom_field_id": EXTERNAL_ID, "field_name": "External ID", "value": "acme-1"}
    ]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"custom_field_id": PLAN, "value": "x"},
            "custom_field_id",
            "The selected custom field id is invalid.",
        ),
        ({"custom_field_id": EXTERNAL_ID}, "value", "The value field is required."),
    ],
)
async def test_profile_custom_field_validation(
    api: SandboxApi, body: dict[str, object], field: str, message: str
) -> None:
    profile = await api.profile()

    answer = await api.call("POST", f"/profiles/{profile}/custom_fields", body)

    assert_422(answer, field, message)


async def test_profile_custom_field_of_an_unknown_profile_is_404(api: SandboxApi) -> None:
    body = {"custom_field_id": EXTERNAL_ID, "value": "x"}

    answer = await api.call("POST", f"/profiles/{UNKNOWN_ID}/custom_fields", body)

    assert_404(answer, "Profile", UNKNOWN_ID)


async def test_attach_contact_lists_it_once(api: SandboxApi) -> None:
    profile = await api.profile()
    contact = await api.contact("jo@example.com", "Jo")
    path = f"/profiles/{profile}/contacts"

    first = await api.call("POST", path, {"contact_id": contact, "type": "EMAIL"})
    again = await api.call("POST", path, {"contact_id": str(contact), "type": "EMAIL"})

    expected = [{"id": contact, "name": "Jo", "identifier": "jo@example.com"}]
    assert (first.status, again.status) == (200, 200)
    assert first.body["contacts"] == again.body["contacts"] == expected


async def test_attach_contact_errors(api: SandboxApi) -> None:
    profile = await api.profile()
    contact = await api.contact()

    path = f"/profiles/{profile}/contacts"
    unknown_profile = await api.call(
        "POST", f"/profiles/{UNKNOWN_ID}/contacts", {"contact_id": contact, "type": "EMAIL"}
    )
    unknown_contact = await api.call("POST", path, {"contact_id": UNKNOWN_ID, "type": "EMAIL"})
    missing = await api.call("POST", path, {"type": "EMAIL"})
    without_type = await api.call("POST", path, {"contact_id": contact})
    other_type = await api.call("POST", path, {"contact_id": contact, "type": "WA_BUSINESS"})

    assert_404(unknown_profile, "Profile", UNKNOWN_ID)
    assert_404(unknown_contact, "Contact", UNKNOWN_ID)
    assert_422(missing, "contact_id", "The contact id field is required.")
    assert_422(without_type, "type", "The type field is required.")
    assert_422(other_type, "type", "The selected type is invalid.")
    assert api.state.profiles.by_id[profile].contacts == {}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("ACME", ["acme", "acme_west"]),
        ("west", ["acme_west"]),
        ("key-7", []),  # field values are never searched: the narrow reading (README)
        ("KEY-", []),
        ("nothing", []),
        ("", ["acme", "globex", "acme_west"]),
    ],
)
async def test_profile_search_matches_the_name_only(
    api: SandboxApi, term: str, expected: list[str]
) -> None:
    ids = {
        "acme": await api.profile("Acme"),
        "globex": await api.profile("Globex", key="key-7"),
        "acme_west": await api.profile("Acme West", key="KEY-8"),
    }

    answer = await api.call("GET", "/profiles", params={"term": term})

    assert answer.status == 200
    assert [p["id"] for p in answer.body["data"]] == [ids[name] for name in expected]


async def test_profile_search_finds_a_renamed_profile_by_its_new_name(api: SandboxApi) -> None:
    profile = await api.profile("Before", key="old-key")
    await api.call("PUT", f"/profiles/{profile}", {"name": "After"})
    await api.call(
        "POST",
        f"/profiles/{profile}/custom_fields",
        {"custom_field_id": EXTERNAL_ID, "value": "new-key"},
    )

    found = {
        term: (await api.call("GET", "/profiles", params={"term": term})).body["data"]
        for term in ("before", "old-key", "after", "new-key")
    }

    assert {term: len(profiles) for term, profiles in found.items()} == {
        "before": 0,
        "old-key": 0,
        "after": 1,
        "new-key": 0,
    }


async def test_profile_search_pages_keep_the_term(api: SandboxApi) -> None:
    created = [await api.profile(f"Shop {n}") for n in range(MANY)]
    await api.profile("Other")

    first = await api.call("GET", "/profiles", params={"term": "shop"})
    second = await api.call("GET", first.body["links"]["next"])

    assert [p["id"] for p in first.body["data"] + second.body["data"]] == created
    assert first.body["links"]["next"].endswith("/api/v2/profiles?page=2&term=shop")
    assert first.body["meta"]["per_page"] == 25
    assert second.body["links"]["next"] is None


async def test_channels_list_every_channel_with_its_type(api: SandboxApi) -> None:
    answer = await api.call("GET", "/channels")

    assert answer.status == 200
    assert [(c["id"], c["type"], c["title"]) for c in answer.body["data"]] == [
        (EMAIL.id, "EMAIL", "Email"),
        (WHATSAPP.id, "WA_BUSINESS", "WhatsApp"),
    ]
    assert answer.body["data"][0]["display_name"] == "Email (support@example.com)"
    assert answer.body["links"]["next"] is None


async def test_a_forbidden_channel_refuses_contacts_and_tickets_but_not_other_calls(
    open_api: OpenApi,
) -> None:
    api = await open_api(SandboxOptions(tokens=(TOKEN,), forbidden_channels=(WHATSAPP.id,)))
    contact = await api.contact()

    on_whatsapp = await api.call(
        "POST", f"/channels/{WHATSAPP.id}/contacts", {"identifier": "+31612345678"}
    )
    ticket = await api.call(
        "POST", "/tickets", {"contact_id": contact, "channel_id": WHATSAPP.id, "subject": "x"}
    )
    on_email = await api.call("POST", "/tickets", {"contact_id": contact, "channel_id": EMAIL.id})
    listed = await api.call("GET", "/channels")

    refusal = {"message": "This action is unauthorized."}
    assert (on_whatsapp.status, on_whatsapp.body) == (403, refusal)
    assert (ticket.status, ticket.body) == (403, refusal)
    assert (on_email.status, listed.status) == (201, 200)
    assert len(api.state.data.tickets) == 1


async def test_a_channel_can_be_forbidden_while_the_sandbox_runs(api: SandboxApi) -> None:
    api.state.apply_faults({"forbidden_channels": [EMAIL.id]})

    refused = await api.call("POST", f"/channels/{EMAIL.id}/contacts", {"identifier": "a@b.c"})
    api.state.apply_faults({"forbidden_channels": []})
    allowed = await api.call("POST", f"/channels/{EMAIL.id}/contacts", {"identifier": "a@b.c"})

    assert (refused.status, allowed.status) == (403, 201)


# --- labels -----------------------------------------------------------------------------------


async def test_labels_list_the_configured_names(api: SandboxApi) -> None:
    answer = await api.call("GET", "/labels")

    assert answer.status == 200
    assert [(label["id"], label["name"], label["sort_order"]) for label in answer.body["data"]] == [
        (LEAD, "lead", 1),
        (ORDER, "order", 2),
        (VIP, "vip", 3),
        (SUPPORT, "support", 4),
    ]
    assert all(label["color"].startswith("#") for label in answer.body["data"])


async def test_labels_are_paginated(open_api: OpenApi) -> None:
    names = tuple(f"label-{n}" for n in range(MANY))
    api = await open_api(SandboxOptions(tokens=(TOKEN,), labels=names))

    first = await api.call("GET", "/labels")
    second = await api.call("GET", "/labels", params={"page": "2"})

    assert [label["name"] for label in first.body["data"] + second.body["data"]] == list(names)
    assert first.body["links"]["next"] is not None
    assert second.body["links"]["next"] is None


async def test_label_ticket_once(api: SandboxApi) -> None:
    ticket = await api.ticket()
    path = f"/tickets/{ticket}/labels"

    first = await api.call("POST", path, {"label_id": VIP})
    again = await api.call("POST", path, {"label_id": VIP})
    other = await api.call("POST", path, {"label_id": LEAD})

    assert (first.status, again.status, other.status) == (200, 200, 200)
    assert first.body["id"] == ticket
    assert [label["name"] for label in first.body["labels"]] == ["vip"]
    assert again.body["labels"] == first.body["labels"]
    assert [label["id"] for label in other.body["labels"]] == [VIP, LEAD]


async def test_label_ticket_errors(api: SandboxApi) -> None:
    ticket = await api.ticket()

    unknown_ticket = await api.call("POST", f"/tickets/{UNKNOWN_ID}/labels", {"label_id": VIP})
    unknown_label = await api.call("POST", f"/tickets/{ticket}/labels", {"label_id": UNKNOWN_ID})
    missing = await api.call("POST", f"/tickets/{ticket}/labels", {})

    assert_404(unknown_ticket, "Ticket", UNKNOWN_ID)
    assert_422(unknown_label, "label_id", "The selected label id is invalid.")
    assert_422(missing, "label_id", "The label id field is required.")
    assert api.state.data.tickets[ticket].labels == []


# --- ticket messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("internal_note", "expected_type", "expected_note"),
    [
        (True, "NOTE", True),
        ("1", "NOTE", True),
        (False, "OUTBOUND", False),
        (0, "OUTBOUND", False),
        (None, "OUTBOUND", False),
    ],
)
async def test_post_message_or_internal_note(
    api: SandboxApi,
    clock: ManualClock,
    internal_note: object,
    expected_type: str,
    expected_note: bool,
) -> None:
    ticket = await api.ticket()
    body: dict[str, object] = {"message": "Order 7 shipped"}
    if internal_note is not None:
        body["internal_note"] = internal_note

    answer = await api.call("POST", f"/tickets/{ticket}/messages", body)

    assert answer.status == 200
    assert answer.body == {
        "id": FIRST_MESSAGE_ID,
        "ticket_id": ticket,
        "message": "Order 7 shipped",
        "type": expected_type,
        "internal_note": expected_note,
        "created_at": laravel_timestamp(clock.wall),
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "message", "The message field is required."),
        ({"message": " "}, "message", "The message field is required."),
        ({"message": ["x"]}, "message", "The message field must be a string."),
        (
            {"message": "x", "internal_note": "yes"},
            "internal_note",
            "The internal note field must be true or false.",
        ),
        (
            {"message": "x", "internal_note": 2},
            "internal_note",
            "The internal note field must be true or false.",
        ),
    ],
)
async def test_post_message_validation(
    api: SandboxApi, body: dict[str, object], field: str, message: str
) -> None:
    ticket = await api.ticket()

    answer = await api.call("POST", f"/tickets/{ticket}/messages", body)

    assert_422(answer, field, message)
    assert api.state.data.tickets[ticket].messages == []


async def test_post_message_to_an_unknown_ticket_is_404(api: SandboxApi) -> None:
    answer = await api.call("POST", f"/tickets/{UNKNOWN_ID}/messages", {"message": "x"})

    assert_404(answer, "Ticket", UNKNOWN_ID)


# --- the pipeline applies to the new routes ---------------------------------------------------

NEW_ROUTES = [
    ("POST", "/contacts/{contact_id}/custom_fields"),
    ("GET", "/custom_fields"),
    ("GET", "/channels"),
    ("GET", "/profiles"),
    ("POST", "/profiles"),
    ("PUT", "/profiles/{profile_id}"),
    ("POST", "/profiles/{profile_id}/custom_fields"),
    ("POST", "/profiles/{profile_id}/contacts"),
    ("GET", "/labels"),
    ("POST", "/tickets/{ticket_id}/labels"),
    ("POST", "/tickets/{ticket_id}/messages"),
]


async def new_route_calls(api: SandboxApi) -> list[tuple[str, str, object]]:
    """(method, path, body) of one valid call of each route of ``NEW_ROUTES``, in that order."""
    ids = {
        "contact_id": await api.contact(),
        "profile_id": await api.profile(),
        "ticket_id": await api.ticket(),
    }
    bodies: dict[str, object] = {
        "/contacts/{contact_id}/custom_fields": {"custom_field_id": PLAN, "value": "pro"},
        "/profiles": {"name": "Acme"},
        "/profiles/{profile_id}": {"name": "Acme 2"},
        "/profiles/{profile_id}/custom_fields": {"custom_field_id": EXTERNAL_ID, "value": "k"},
        "/profiles/{profile_id}/contacts": {"contact_id": ids["contact_id"], "type": "EMAIL"},
        "/tickets/{ticket_id}/labels": {"label_id": VIP},
        "/tickets/{ticket_id}/messages": {"message": "hi"},
    }
    return [(method, route.format(**ids), bodies.get(route)) for method, route in NEW_ROUTES]


async def test_new_routes_are_recorded_by_route_template(api: SandboxApi) -> None:
    calls = await new_route_calls(api)
    before = api.state.recorder.total

    answers = [await api.call(method, path, body) for method, path, body in calls]

    recorded = api.state.recorder.since(before)
    assert [answer.status for answer in answers] == [200] * len(NEW_ROUTES)
    assert [(r.method, r.route, r.status) for r in recorded] == [
        (method, f"/api/v2{route}", 200) for method, route in NEW_ROUTES
    ]
    assert [r.path for r in recorded] == [f"/api/v2{path}" for _, path, _ in calls]
    assert recorded[0].json_body == {"custom_field_id": PLAN, "value": "pro"}


async def test_new_routes_need_a_token(api: SandboxApi) -> None:
    calls = await new_route_calls(api)

    answers = [await api.call(method, path, body, token=None) for method, path, body in calls]

    assert {answer.status for answer in answers} == {401}


async def test_new_routes_get_injected_errors(api: SandboxApi) -> None:
    ticket = await api.ticket()
    api.state.apply_faults({"error_rate": 1})

    answers = [
        await api.call("GET", "/labels"),
        await api.call("POST", f"/tickets/{ticket}/messages", {"message": "x"}),
    ]

    assert {answer.status for answer in answers} <= {500, 503}
    assert api.state.data.message_count == 0


async def test_rate_limit_counts_the_new_routes(api: SandboxApi, clock: ManualClock) -> None:
    api.state.apply_faults({"requests_per_minute": 2})

    allowed = [await api.call("POST", "/profiles", {"name": "A"}), await api.call("GET", "/labels")]
    refused = await api.call("POST", "/profiles", {"name": "B"})
    clock.advance(60)
    next_window = await api.call("GET", "/profiles")

    assert [answer.headers["x-ratelimit-remaining"] for answer in allowed] == ["1", "0"]
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "60"
    assert [profile.name for profile in api.state.profiles.by_id.values()] == ["A"]
    assert next_window.status == 200
