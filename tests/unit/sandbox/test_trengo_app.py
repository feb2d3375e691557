"""The sandbox over real HTTP on loopback: routes, auth, rate limit, faults, recording, admin.

One sandbox serves the whole module (with a clock the tests move by hand) and is reset to its
start options before every test.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devkit.sandbox.trengo import (
    DEFAULT_CHANNELS,
    FIRST_CONTACT_ID,
    ManualClock,
    RunningSandbox,
    SandboxChannel,
    SandboxOptions,
)

TOKEN = "token-a"
OTHER_TOKEN = "token-b"
LIMIT = 120
EMAIL, WHATSAPP = DEFAULT_CHANNELS
SALES_EMAIL = SandboxChannel(id=650_579, type="EMAIL", title="Sales", address="sales@example.com")
UNKNOWN_ID = 12345
HTTP_TIMEOUT_SECONDS = 5.0
HANG_TIMEOUT_SECONDS = 0.2
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining")


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def running(clock: ManualClock) -> Iterator[RunningSandbox]:
    options = SandboxOptions(tokens=(TOKEN, OTHER_TOKEN), channels=(*DEFAULT_CHANNELS, SALES_EMAIL))
    with RunningSandbox(options, clock.as_sandbox_clock()) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(running: RunningSandbox) -> RunningSandbox:
    running.reset(restore_config=True)
    return running


def client_for(sandbox: RunningSandbox, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=HTTP_TIMEOUT_SECONDS)


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with client_for(sandbox) as client:
        yield client


@pytest.fixture
def admin(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.admin_url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        yield client


def create_contact(
    api: httpx.Client, channel: SandboxChannel, identifier: str, name: str | None = None
) -> httpx.Response:
    body = {"identifier": identifier, "channel_id": channel.id}
    if name is not None:
        body["name"] = name
    return api.post(f"/channels/{channel.id}/contacts", json=body)


def contact_id(response: httpx.Response) -> int:
    response.raise_for_status()
    identifier: int = response.json()["id"]
    return identifier


# --- contacts ---------------------------------------------------------------------------------


def test_search_finds_fuzzy_matches_across_channels(api: httpx.Client) -> None:
    anna = contact_id(create_contact(api, EMAIL, "Anna.Smith@Example.com", "Anna Smith"))
    reza = contact_id(create_contact(api, WHATSAPP, "+98 30311521", "Reza"))
    contact_id(create_contact(api, SALES_EMAIL, "bob@example.org", "Bob"))

    by_name = api.get("/contacts", params={"term": "ANNA"}).json()
    by_digits = api.get("/contacts", params={"term": "9830311521"}).json()

    assert [c["id"] for c in by_name["data"]] == [anna]
    assert [c["id"] for c in by_digits["data"]] == [reza]
    assert by_digits["data"][0]["channels"][0]["id"] == WHATSAPP.id
    assert api.get("/contacts", params={"term": "nobody"}).json()["data"] == []


def test_search_pages_follow_links_next(sandbox: RunningSandbox, api: httpx.Client) -> None:
    created = [contact_id(create_contact(api, EMAIL, f"user{n}@example.com")) for n in range(30)]
    contact_id(create_contact(api, EMAIL, "someone@else.org"))

    first = api.get("/contacts", params={"term": "user"}).json()
    second = api.get(first["links"]["next"]).json()

    path = f"{sandbox.base_url}/contacts"
    assert [c["id"] for c in first["data"] + second["data"]] == created
    assert first["links"] == {
        "first": f"{path}?page=1&term=user",
        "last": None,
        "prev": None,
        "next": f"{path}?page=2&term=user",
    }
    assert first["meta"] == {"current_page": 1, "from": 1, "path": path, "per_page": 25, "to": 25}
    assert (second["meta"]["from"], second["meta"]["to"], second["links"]["next"]) == (26, 30, None)


@pytest.mark.parametrize("page", ["0", "-1", "abc"])
def test_bad_page_numbers_mean_page_one(api: httpx.Client, page: str) -> None:
    contact_id(create_contact(api, EMAIL, "a@b.c"))

    body = api.get("/contacts", params={"page": page}).json()

    assert body["meta"]["current_page"] == 1
    assert len(body["data"]) == 1


def test_email_channel_finds_or_creates(api: httpx.Client) -> None:
    first = create_contact(api, EMAIL, "Jo@Example.com", "Jo")
    again = create_contact(api, EMAIL, "jo@example.COM")
    other_channel = create_contact(api, SALES_EMAIL, "jo@example.com")

    assert (first.status_code, again.status_code, other_channel.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    assert other_channel.json()["id"] != first.json()["id"]


def test_phone_channel_always_creates(api: httpx.Client) -> None:
    first = create_contact(api, WHATSAPP, "31612345678")
    second = create_contact(api, WHATSAPP, "31612345678")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert len(api.get("/contacts", params={"term": "31612345678"}).json()["data"]) == 2


def test_created_contact_is_a_bare_object_with_a_64_bit_id(api: httpx.Client) -> None:
    contact = create_contact(api, WHATSAPP, "31612345678", "Piet").json()

    assert contact["id"] >= FIRST_CONTACT_ID > 2**32
    assert "data" not in contact
    assert "channels" not in contact
    expected = {"name": "Piet", "phone": "+31612345678", "identifier": "+31612345678"}
    assert {key: contact[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("channel", "body", "field", "message"),
    [
        (EMAIL, {}, "identifier", "The identifier field is required."),
        (EMAIL, {"identifier": "   "}, "identifier", "The identifier field is required."),
        (EMAIL, {"identifier": 5}, "identifier", "The identifier field must be a string."),
        (
            EMAIL,
            {"identifier": "31612345678"},
            "identifier",
            "The identifier field must be a valid email address.",
        ),
        (
            WHATSAPP,
            {"identifier": "jo@x.nl"},
            "identifier",
            "The identifier field format is invalid.",
        ),
        (EMAIL, {"identifier": "a@b.c", "name": 3}, "name", "The name field must be a string."),
    ],
)
def test_create_contact_validation_is_laravel_422(
    api: httpx.Client, channel: SandboxChannel, body: dict[str, object], field: str, message: str
) -> None:
    response = api.post(f"/channels/{channel.id}/contacts", json=body)

    assert response.status_code == 422
    assert response.json() == {"message": message, "errors": {field: [message]}}


def test_create_contact_on_unknown_channel_is_404(api: httpx.Client) -> None:
    response = api.post(f"/channels/{UNKNOWN_ID}/contacts", json={"identifier": "a@b.c"})

    assert response.status_code == 404
    assert response.json().keys() == {"message"}


def test_update_renames_regroups_and_reindexes(api: httpx.Client) -> None:
    created = contact_id(create_contact(api, EMAIL, "a@b.c", "Old"))

    response = api.put(f"/contacts/{created}", json={"name": "New Name", "contact_group_ids": [4]})

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["groups"]) == (
        "New Name",
        [{"id": 4, "name": "Group 4"}],
    )
    assert [c["id"] for c in api.get("/contacts", params={"term": "new name"}).json()["data"]] == [
        created
    ]


@pytest.mark.parametrize(
    ("contact", "body", "status"),
    [
        ("unknown", {"name": "X"}, 404),
        ("unknown", {}, 404),
        ("known", {}, 422),
        ("known", {"name": "X", "contact_group_ids": ["a"]}, 422),
    ],
)
def test_update_errors(
    api: httpx.Client, contact: str, body: dict[str, object], status: int
) -> None:
    known = contact_id(create_contact(api, EMAIL, "a@b.c"))

    response = api.put(f"/contacts/{known if contact == 'known' else UNKNOWN_ID}", json=body)

    assert response.status_code == status
    assert "message" in response.json()


# --- tickets ----------------------------------------------------------------------------------


def test_create_ticket_returns_a_bare_open_ticket(api: httpx.Client) -> None:
    contact = contact_id(create_contact(api, EMAIL, "a@b.c"))

    response = api.post(
        "/tickets", json={"channel_id": str(EMAIL.id), "contact_id": contact, "subject": "Hi"}
    )

    ticket = response.json()
    assert response.status_code == 201
    assert ticket["id"] > 2**32
    expected = {"contact_id": contact, "channel_id": EMAIL.id, "subject": "Hi", "status": "OPEN"}
    assert {key: ticket[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("body", "message", "fields"),
    [
        ({}, "The channel id field is required. (and 1 more error)", {"channel_id", "contact_id"}),
        ({"channel_id": EMAIL.id}, "The contact id field is required.", {"contact_id"}),
        (
            {"channel_id": EMAIL.id, "contact_id": UNKNOWN_ID},
            "The selected contact id is invalid.",
            {"contact_id"},
        ),
        (
            {"channel_id": UNKNOWN_ID, "contact_id": "known"},
            "The selected channel id is invalid.",
            {"channel_id"},
        ),
        (
            {"channel_id": True, "contact_id": "known"},
            "The channel id field must be an integer.",
            {"channel_id"},
        ),
    ],
)
def test_create_ticket_validation(
    api: httpx.Client, body: dict[str, object], message: str, fields: set[str]
) -> None:
    known = contact_id(create_contact(api, EMAIL, "a@b.c"))
    body = {key: known if value == "known" else value for key, value in body.items()}

    response = api.post("/tickets", json=body)

    assert response.status_code == 422
    assert response.json()["message"] == message
    assert response.json()["errors"].keys() == fields


# --- authentication and rate limit ------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer nope", f"Basic {TOKEN}", "Bearer"])
def test_missing_or_unknown_token_is_401_and_uncounted(
    sandbox: RunningSandbox, api: httpx.Client, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=sandbox.base_url, headers=headers) as anonymous:
        response = anonymous.get("/contacts")

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}
    assert not any(header in response.headers for header in RATE_HEADERS)
    assert api.get("/contacts").headers["x-ratelimit-remaining"] == str(LIMIT - 1)


def test_token_set_changes_at_runtime(sandbox: RunningSandbox, api: httpx.Client) -> None:
    sandbox.set_faults(tokens=["rotated"])
    assert api.get("/contacts").status_code == 401

    sandbox.set_faults(tokens=[TOKEN])
    assert api.get("/contacts").status_code == 200


def test_denied_token_is_403_with_rate_headers(sandbox: RunningSandbox, api: httpx.Client) -> None:
    sandbox.set_faults(denied_tokens=[TOKEN])

    response = api.get("/contacts")

    assert response.status_code == 403
    assert response.headers["x-ratelimit-remaining"] == str(LIMIT - 1)


def test_rate_limit_counts_down_per_token_then_429_until_the_window_ends(
    sandbox: RunningSandbox, clock: ManualClock, api: httpx.Client
) -> None:
    sandbox.set_faults(requests_per_minute=3)
    remaining = [api.get("/contacts").headers["x-ratelimit-remaining"] for _ in range(2)]
    not_found = api.put(f"/contacts/{UNKNOWN_ID}", json={"name": "X"})
    clock.advance(59.5)

    refused = api.get("/contacts")
    with client_for(sandbox, OTHER_TOKEN) as other:
        other_token = other.get("/contacts")
    clock.advance(0.5)
    next_window = api.get("/contacts")

    assert remaining == ["2", "1"]
    assert (not_found.status_code, not_found.headers["x-ratelimit-remaining"]) == (404, "0")
    assert refused.status_code == 429
    assert refused.json() == {"message": "Too Many Attempts."}
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Reset"] == str(int(clock.wall))
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert other_token.headers["x-ratelimit-remaining"] == "2"
    assert next_window.headers["x-ratelimit-remaining"] == "2"


@pytest.mark.parametrize("requests_per_minute", [0, None])
def test_rate_limit_off_sends_no_headers_and_never_429(
    sandbox: RunningSandbox, api: httpx.Client, requests_per_minute: int | None
) -> None:
    sandbox.set_faults(requests_per_minute=requests_per_minute)

    responses = [api.get("/contacts") for _ in range(5)]

    assert {response.status_code for response in responses} == {200}
    assert not any(header in responses[-1].headers for header in RATE_HEADERS)


# --- faults -----------------------------------------------------------------------------------


def test_error_rate_is_seeded_and_reproducible(sandbox: RunningSandbox, api: httpx.Client) -> None:
    sandbox.set_faults(error_rate=0.5, requests_per_minute=None)
    first_run = [api.get("/contacts").status_code for _ in range(40)]
    sandbox.reset()
    second_run = [api.get("/contacts").status_code for _ in range(40)]

    assert first_run == second_run
    assert set(first_run) == {200, 500, 503}


def test_unavailable_for_fails_only_the_requests_that_mention_the_text(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    sandbox.set_faults(unavailable_for=("stuck",), requests_per_minute=None)

    mentioned_in_body = api.post(f"/channels/{EMAIL.id}/contacts", json={"identifier": "stuck@b.c"})
    mentioned_in_query = api.get("/contacts", params={"term": "stuck@b.c"})
    other = api.post(f"/channels/{EMAIL.id}/contacts", json={"identifier": "ok@b.c"})

    assert (mentioned_in_body.status_code, mentioned_in_query.status_code) == (503, 503)
    assert other.status_code == 201
    sandbox.set_faults(unavailable_for=())
    assert api.get("/contacts", params={"term": "stuck@b.c"}).status_code == 200


def test_error_rate_one_fails_every_request_with_json(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    sandbox.set_faults(error_rate=1)

    response = api.post(f"/channels/{EMAIL.id}/contacts", json={"identifier": "a@b.c"})

    assert response.status_code in {500, 503}
    assert "message" in response.json()
    assert "x-ratelimit-remaining" in response.headers
    assert sandbox.snapshot()["counts"] == {
        "contacts": 0,
        "tickets": 0,
        "messages": 0,
        "profiles": 0,
        "requests": 1,
    }


def test_outage_window_answers_503_before_auth_until_it_ends(
    sandbox: RunningSandbox, clock: ManualClock, api: httpx.Client
) -> None:
    sandbox.set_faults(outage_seconds=10)
    during = api.get("/contacts")
    with client_for(sandbox, "bad-token") as anonymous:
        unauthenticated_during = anonymous.get("/contacts")
    clock.advance(10)
    after = api.get("/contacts")

    assert (during.status_code, unauthenticated_during.status_code) == (503, 503)
    assert "x-ratelimit-remaining" not in during.headers
    assert after.status_code == 200
    assert after.headers["x-ratelimit-remaining"] == str(LIMIT - 1)


def test_429_storm_refuses_the_next_requests_without_spending_budget(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    sandbox.set_faults(storm_429_requests=2, storm_retry_after_seconds=7)

    storm = [api.get("/contacts") for _ in range(2)]
    after = api.get("/contacts")

    assert [(r.status_code, r.headers["Retry-After"]) for r in storm] == [(429, "7"), (429, "7")]
    assert "X-RateLimit-Reset" in storm[0].headers
    assert after.status_code == 200
    assert after.headers["x-ratelimit-remaining"] == str(LIMIT - 1)


def test_429_storm_without_a_rate_limit_sends_no_limit_headers(
    sandbox: RunningSandbox, clock: ManualClock, api: httpx.Client
) -> None:
    sandbox.set_faults(requests_per_minute=0, storm_429_requests=1, storm_retry_after_seconds=3)

    refused = api.get("/contacts")

    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Reset"] == str(int(clock.wall) + 3)
    assert not any(header in refused.headers for header in RATE_HEADERS)


def test_latency_is_spent_on_the_sandbox_clock(
    sandbox: RunningSandbox, clock: ManualClock, api: httpx.Client
) -> None:
    sandbox.set_faults(latency_ms=250)
    before = clock.monotonic

    api.get("/contacts")

    assert clock.monotonic - before == pytest.approx(0.25)


def test_hang_holds_requests_until_switched_off(sandbox: RunningSandbox) -> None:
    sandbox.set_faults(hang=True)
    with client_for(sandbox) as api, pytest.raises(httpx.ReadTimeout):
        api.get("/contacts", timeout=HANG_TIMEOUT_SECONDS)

    sandbox.set_faults(hang=False)
    with client_for(sandbox) as api:
        after = api.get("/contacts")

    assert after.status_code == 200
    assert [r.status for r in sandbox.requests()] == [503, 200]


# --- recording and admin ----------------------------------------------------------------------


def test_every_api_request_is_recorded(
    sandbox: RunningSandbox, clock: ManualClock, api: httpx.Client, admin: httpx.Client
) -> None:
    api.get("/contacts", params={"term": "x", "page": "2"})
    create_contact(api, EMAIL, "a@b.c", "A")
    api.get("/no-such-route")
    admin.get("/state")

    recorded = sandbox.requests()
    over_http = admin.get("/requests", params={"since": 1}).json()

    assert [(r.index, r.method, r.route, r.status) for r in recorded] == [
        (0, "GET", "/api/v2/contacts", 200),
        (1, "POST", "/api/v2/channels/{channel_id}/contacts", 201),
        (2, "GET", "<unmatched>", 404),
    ]
    assert (recorded[0].query, recorded[0].token, recorded[0].at) == (
        {"term": "x", "page": "2"},
        TOKEN,
        clock.wall,
    )
    assert recorded[1].json_body == {"identifier": "a@b.c", "channel_id": EMAIL.id, "name": "A"}
    assert recorded[1].path == f"/api/v2/channels/{EMAIL.id}/contacts"
    assert [r["index"] for r in over_http["requests"]] == [1, 2]
    assert over_http["next_index"] == 3
    assert over_http["requests"][0]["json"] == recorded[1].json_body


def test_admin_state_counts_by_method_route_status(api: httpx.Client, admin: httpx.Client) -> None:
    contact_id(create_contact(api, EMAIL, "a@b.c"))
    create_contact(api, EMAIL, "a@b.c")
    api.post("/tickets", json={})

    state = admin.get("/state").json()

    assert state["counts"] == {
        "contacts": 1,
        "tickets": 0,
        "messages": 0,
        "profiles": 0,
        "requests": 3,
    }
    assert [c["id"] for c in state["channels"]] == [EMAIL.id, WHATSAPP.id, SALES_EMAIL.id]
    assert state["contacts"][0]["identifier"] == "a@b.c"
    assert state["config"]["tokens"] == [TOKEN, OTHER_TOKEN]
    route = "/api/v2/channels/{channel_id}/contacts"
    assert state["request_counts"] == [
        {"method": "POST", "route": route, "status": 200, "count": 1},
        {"method": "POST", "route": route, "status": 201, "count": 1},
        {"method": "POST", "route": "/api/v2/tickets", "status": 422, "count": 1},
    ]


def test_admin_faults_changes_knobs_and_rejects_bad_ones(
    api: httpx.Client, admin: httpx.Client
) -> None:
    accepted = admin.post("/faults", json={"requests_per_minute": 5, "denied_tokens": ["x"]})
    unknown = admin.post("/faults", json={"error_rat": 0.5})
    out_of_range = admin.post("/faults", json={"error_rate": 2})
    not_an_object = admin.post("/faults", json=[1])

    assert accepted.status_code == 200
    assert accepted.json()["config"]["requests_per_minute"] == 5
    assert api.get("/contacts").headers["x-ratelimit-limit"] == "5"
    assert [r.status_code for r in (unknown, out_of_range, not_an_object)] == [400, 400, 400]
    assert out_of_range.json()["errors"][0]["field"] == "error_rate"


def test_admin_reset_keeps_or_restores_config(
    sandbox: RunningSandbox, api: httpx.Client, admin: httpx.Client
) -> None:
    contact_id(create_contact(api, EMAIL, "a@b.c"))
    admin.post("/faults", json={"requests_per_minute": 5})

    admin.post("/reset")
    kept = admin.get("/state").json()
    admin.post("/reset", json={"restore_config": True})
    restored = admin.get("/state").json()

    assert kept["counts"] == {
        "contacts": 0,
        "tickets": 0,
        "messages": 0,
        "profiles": 0,
        "requests": 0,
    }
    assert kept["config"]["requests_per_minute"] == 5
    assert restored["config"]["requests_per_minute"] == LIMIT
    assert contact_id(create_contact(api, EMAIL, "a@b.c")) == FIRST_CONTACT_ID


def test_admin_health_and_bad_since(admin: httpx.Client) -> None:
    assert admin.get("/health").json() == {"status": "ok"}
    assert admin.get("/requests", params={"since": "x"}).status_code == 400
