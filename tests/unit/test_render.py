"""The dry run: the real executor's requests for every plan type, in order, each with the
condition it is sent under; and the same verdict as the pipeline for events it refuses."""

from __future__ import annotations

import inspect
import json
from typing import Any

import httpx
import pytest

from processor.config import Settings, TrengoConfig
from processor.engine.handler import KafkaRecord
from processor.pipeline.filters import EventFilter
from processor.pipeline.plan import (
    CreateContact,
    CreateTicket,
    GroupPlan,
    IdentifyPlan,
    KnownContact,
    Plan,
    PostMessage,
    Rejection,
    ResolveContact,
    ResolveProfile,
    SetCustomField,
    Skip,
    TicketPlan,
    UpdateContact,
)
from processor.pipeline.prepare import RecordPreparer
from processor.pipeline.templates import EventTemplates
from processor.render import ROUTES, Step, operation_of, rehearse, render_event
from processor.trengo import endpoints

EMAIL = ResolveContact("ann@example.com", "email", "7")
PHONE = ResolveContact("31612345678", "phone", "7")
KNOWN = KnownContact(90002431001)
PROFILE = ResolveProfile("acme-1", 2001, "Acme", "7")
SETTINGS = Settings(
    destination={
        "apiToken": "s3cret-token",
        "channelId": "7",
        "eventTemplateMap": [{"from": "Order Completed", "to": "Order", "labels": ["vip"]}],
    }
)


def steps_of(plan: Plan, trengo: TrengoConfig | None = None) -> list[Step]:
    steps, _ = rehearse(plan, trengo or TrengoConfig())
    return steps


def requests_of(plan: Plan, trengo: TrengoConfig | None = None) -> list[str]:
    return [
        f"{step.request.method} {step.request.url.path.removeprefix('/api/v2')}"
        for step in steps_of(plan, trengo)
    ]


def identify(
    contact: ResolveContact | KnownContact | None, *fields: SetCustomField, name: str | None = "Ann"
) -> IdentifyPlan:
    create = None if isinstance(contact, KnownContact) else CreateContact("7", "x", name)
    return IdentifyPlan(contact, UpdateContact(name), create, fields)


def track(
    contact: ResolveContact | KnownContact = EMAIL,
    message: PostMessage | None = None,
    labels: tuple[str, ...] = (),
    event_key: str | None = None,
) -> TicketPlan:
    ticket = CreateTicket("7", "Order 5")
    return TicketPlan("Order Completed", contact, ticket, message, labels, event_key)


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (identify(KNOWN), ["PUT /contacts/90002431001"]),
        (
            identify(KNOWN, SetCustomField(1001, "pro"), SetCustomField(1002, "Acme")),
            [
                "PUT /contacts/90002431001",
                "POST /contacts/90002431001/custom_fields",
                "POST /contacts/90002431001/custom_fields",
            ],
        ),
        (
            identify(PHONE, SetCustomField(1001, "pro")),
            [
                "GET /contacts",
                "POST /channels/7/contacts",
                "PUT /contacts/{contact_id}",
                "POST /contacts/{contact_id}/custom_fields",
            ],
        ),
        # dedup off: a create, and an update when Trengo answers with a contact it had
        (identify(None), ["POST /channels/7/contacts", "PUT /contacts/{contact_id}"]),
        (identify(KNOWN, name=None), []),
        (track(), ["GET /contacts", "POST /tickets"]),
        (track(KNOWN), ["POST /tickets"]),
        (
            track(labels=("vip", "order"), message=PostMessage("Hi", internal_note=True)),
            [
                "GET /labels",
                "GET /contacts",
                "POST /tickets",
                "POST /tickets/{ticket_id}/messages",
                "POST /tickets/{ticket_id}/labels",
                "POST /tickets/{ticket_id}/labels",
            ],
        ),
        (
            GroupPlan("acme-1", KNOWN, PROFILE),
            [
                "GET /profiles",
                "GET /profiles",
                "POST /profiles",
                "POST /profiles/{profile_id}/custom_fields",
                "PUT /profiles/{profile_id}",
                "GET /channels",
                "POST /profiles/{profile_id}/contacts",
            ],
        ),
    ],
)
def test_each_plan_type_lists_the_executors_requests_in_order(
    plan: Plan, expected: list[str]
) -> None:
    assert requests_of(plan) == expected


@pytest.mark.parametrize(
    ("email_find_or_create", "expected"),
    [
        (True, ["POST /channels/7/contacts", "PUT /contacts/{contact_id}"]),
        (False, ["GET /contacts", "POST /channels/7/contacts", "PUT /contacts/{contact_id}"]),
    ],
)
def test_an_email_identify_creates_first_unless_configured_to_search(
    email_find_or_create: bool, expected: list[str]
) -> None:
    trengo = TrengoConfig(email_find_or_create=email_find_or_create)
    assert requests_of(identify(EMAIL), trengo) == expected


def test_custom_fields_are_sent_only_when_changed() -> None:
    _, field = steps_of(identify(KNOWN, SetCustomField(1001, "pro")))
    assert field.body == {"custom_field_id": 1001, "value": "pro"}
    assert field.when == "the value differs from the last one sent to this contact"


def test_ticket_follow_ups_say_when_and_to_whom() -> None:
    plan = track(labels=("vip",), message=PostMessage("Hi", internal_note=False), event_key="m1")
    labels, _, opened, message, label = steps_of(plan)
    assert labels.when.startswith("first label lookup of this process")
    assert opened.when.endswith("a retry of this event after it opened opens no other")
    assert message.when == "after the ticket opened (the customer gets it)"
    assert message.body == {"message": "Hi", "internal_note": False}
    assert label.when == "after the ticket opened (label 'vip')"
    assert label.body == {"label_id": "{label_id of 'vip'}"}


def test_a_ticket_without_follow_ups_is_unchanged() -> None:
    (search, opened) = steps_of(track(event_key="m1"))
    assert opened.when == "always (no contact found → dead letter)"
    assert dict(search.request.url.params) == {"page": "1", "term": "ann@example.com"}


def test_a_group_never_creates_its_contact() -> None:
    plan = GroupPlan("acme-1", EMAIL, PROFILE)
    search, profiles, by_name, create, key, rename, channels, attach = steps_of(plan)
    assert search.when.endswith("none → dead letter (a group never creates a contact)")
    assert dict(profiles.request.url.params) == {"page": "1", "term": "acme-1"}
    assert "custom field 2001 is exactly 'acme-1'" in profiles.when
    assert dict(by_name.request.url.params) == {"page": "1", "term": "Acme"}
    assert create.body == {"name": "Acme"}
    assert key.body == {"custom_field_id": 2001, "value": "acme-1"}
    assert rename.body == {"name": "Acme"}
    assert "channel 7's type" in channels.when
    assert attach.body == {"contact_id": "{contact_id}", "type": "{channel_type}"}


def test_a_group_named_by_its_key_searches_once() -> None:
    plan = GroupPlan("acme-1", KNOWN, ResolveProfile("acme-1", 2001, "acme-1", "7"))
    searches = [step for step in steps_of(plan) if step.operation == "search_profiles"]
    assert [step.request.url.params["term"] for step in searches] == ["acme-1"]


def test_a_plan_the_executor_refuses_before_any_call_is_a_deliver_rejection() -> None:
    steps, failure = rehearse(IdentifyPlan(None, UpdateContact("Ann"), None), TrengoConfig())
    assert steps == []
    assert failure is not None
    assert failure.reason == "identify: no contact to update and nothing to create"


def test_render_shows_unknown_ids_readably() -> None:
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m1",
        "context": {"traits": {"email": "ann@example.com"}},
    }
    out = render_event(json.dumps(event).encode(), SETTINGS)
    assert "POST https://app.trengo.com/api/v2/tickets/{ticket_id}/labels" in out
    assert """body: {"label_id": "{label_id of 'vip'}"}""" in out
    assert "s3cret-token" not in out


def test_render_shows_the_url_that_goes_out() -> None:
    event = {
        "type": "track",
        "event": "Order Completed",
        "context": {"traits": {"email": "a+b@example.com"}},
    }
    out = render_event(json.dumps(event).encode(), SETTINGS)
    assert "GET https://app.trengo.com/api/v2/contacts?page=1&term=a%2Bb@example.com" in out


def _sample(builder: str) -> endpoints.TrengoRequest:
    """One request of each endpoint builder, with ids that look like Trengo's."""
    arguments: dict[str, tuple[Any, ...]] = {
        "search_contacts": ("ann",),
        "create_contact": (CreateContact("7", "ann@example.com", "Ann"),),
        "update_contact": (5, UpdateContact("Ann")),
        "create_ticket": (5, CreateTicket("7", "Hi")),
        "set_contact_custom_field": (5, SetCustomField(1, "x")),
        "post_message": (6, PostMessage("Hi", internal_note=True)),
        "list_labels": (),
        "list_channels": (),
        "list_custom_fields": (),
        "attach_label": (6, 8),
        "search_profiles": ("acme",),
        "create_profile": ("Acme",),
        "rename_profile": (9, "Acme"),
        "set_profile_custom_field": (9, 1, "acme"),
        "attach_contact_to_profile": (9, 5, "EMAIL"),
    }
    request: endpoints.TrengoRequest = getattr(endpoints, builder)(*arguments[builder])
    return request


BUILDERS = [
    name
    for name, function in inspect.getmembers(endpoints, inspect.isfunction)
    if function.__module__ == endpoints.__name__
    and not name.startswith("_")
    and inspect.signature(function).return_annotation == "TrengoRequest"
]


@pytest.mark.parametrize("builder", BUILDERS)
def test_every_endpoint_routes_to_its_own_operation_in_the_rehearsal(builder: str) -> None:
    request = _sample(builder)
    sent = httpx.Request(request.method, endpoints.url("https://trengo.test/api/v2", request))
    assert operation_of(sent, "/api/v2") == request.operation == builder


def test_the_routes_are_the_endpoints() -> None:
    assert sorted(operation for _, _, operation in ROUTES) == sorted(BUILDERS)


def test_a_request_to_an_unknown_route_is_an_error_not_a_guess() -> None:
    with pytest.raises(LookupError, match="no route for DELETE /tickets/5"):
        operation_of(httpx.Request("DELETE", "https://trengo.test/api/v2/tickets/5"), "/api/v2")


def _event(**fields: Any) -> bytes:
    event = {
        "type": "identify",
        "messageId": "m1",
        "userId": "u1",
        "context": {"traits": {"email": "ann@example.com", "name": "Ann"}},
    }
    return json.dumps({**event, **fields}).encode()


HOSTILE = [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b'{"type": "identify", "userId": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deeply-nested"),
    pytest.param(_event(type=7), id="type-not-a-string"),
    pytest.param(
        _event(context={"traits": {"email": "a" * 100_000 + "@example.com"}}), id="huge-email"
    ),
    pytest.param(
        _event(context={"externalId": [{"type": "trengoContactId", "id": {"x": 1}}]}),
        id="contact-id-an-object",
    ),
    pytest.param(_event(context={"externalId": "5"}), id="external-id-not-a-list"),
    pytest.param(_event(context={"traits": "ann"}), id="traits-not-an-object"),
    pytest.param(_event(type="track", event=None), id="track-without-event"),
]


@pytest.mark.parametrize("value", HOSTILE)
def test_render_gives_the_pipelines_verdict_for_hostile_events(value: bytes) -> None:
    prepared = RecordPreparer(
        SETTINGS, EventTemplates(SETTINGS.destination), EventFilter.from_settings(SETTINGS)
    )(KafkaRecord("events", 0, 1, None, value, (), None))
    report = render_event(value, SETTINGS)
    work = prepared.work
    if isinstance(work, Rejection):
        assert report.startswith(f"rejected at {work.stage}: {work.reason}\n")
    elif isinstance(work, Skip):
        assert report.startswith(f"skipped at filter ({work.reason}): {work.detail}\n")
    else:
        assert report.splitlines()[1] == f"plan: {work!r}"
