"""The dry run: every plan type's requests in order, with the condition each is sent under."""

from __future__ import annotations

import json

import pytest

from processor.config import Settings, TrengoConfig
from processor.pipeline.plan import (
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
from processor.render import plan_steps, render_event

EMAIL = ResolveContact("ann@example.com", "email", "7")
PHONE = ResolveContact("31612345678", "phone", "7")
KNOWN = KnownContact(90002431001)


def requests_of(plan: Plan, trengo: TrengoConfig | None = None) -> list[str]:
    steps = plan_steps(plan, trengo or TrengoConfig())
    return [f"{step.request.method} {step.request.path}" for step in steps]


def identify(contact: ResolveContact | KnownContact, *fields: SetCustomField) -> IdentifyPlan:
    create = None if isinstance(contact, KnownContact) else CreateContact("7", "x", "Ann")
    return IdentifyPlan(contact, UpdateContact("Ann"), create, fields)


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
                "PUT /contacts/%7Bcontact_id%7D",
                "POST /contacts/%7Bcontact_id%7D/custom_fields",
            ],
        ),
        (track(), ["GET /contacts", "POST /tickets"]),
        (track(KNOWN), ["POST /tickets"]),
        (
            track(labels=("vip", "order"), message=PostMessage("Hi", internal_note=True)),
            [
                "GET /labels",
                "GET /contacts",
                "POST /tickets",
                "POST /tickets/%7Bticket_id%7D/messages",
                "POST /tickets/%7Bticket_id%7D/labels",
                "POST /tickets/%7Bticket_id%7D/labels",
            ],
        ),
        (
            GroupPlan("acme-1", KNOWN, ResolveProfile("acme-1", 2001, "Acme", "7")),
            [
                "GET /profiles",
                "GET /profiles",
                "POST /profiles",
                "POST /profiles/%7Bprofile_id%7D/custom_fields",
                "PUT /profiles/%7Bprofile_id%7D",
                "POST /profiles/%7Bprofile_id%7D/contacts",
            ],
        ),
    ],
)
def test_each_plan_type_lists_its_requests_in_order(plan: Plan, expected: list[str]) -> None:
    assert requests_of(plan) == expected


@pytest.mark.parametrize(
    ("email_find_or_create", "expected"),
    [
        (True, ["POST /channels/7/contacts", "PUT /contacts/%7Bcontact_id%7D"]),
        (False, ["GET /contacts", "POST /channels/7/contacts", "PUT /contacts/%7Bcontact_id%7D"]),
    ],
)
def test_an_email_identify_creates_first_unless_configured_to_search(
    email_find_or_create: bool, expected: list[str]
) -> None:
    trengo = TrengoConfig(email_find_or_create=email_find_or_create)
    assert requests_of(identify(EMAIL), trengo) == expected


def test_custom_fields_are_sent_only_when_changed() -> None:
    steps = plan_steps(identify(KNOWN, SetCustomField(1001, "pro")), TrengoConfig())
    assert steps[1].request.json == {"custom_field_id": 1001, "value": "pro"}
    assert steps[1].when == "the value differs from the last one sent to this contact"


def test_ticket_follow_ups_say_when_and_to_whom() -> None:
    plan = track(labels=("vip",), message=PostMessage("Hi", internal_note=False), event_key="m1")
    labels, _, opened, message, label = plan_steps(plan, TrengoConfig())
    assert labels.when.startswith("first label lookup of this process")
    assert opened.when.endswith("a retry of this event after it opened opens no other")
    assert message.when == "after the ticket opened (the customer gets it)"
    assert message.request.json == {"message": "Hi", "internal_note": False}
    assert label.when == "after the ticket opened (label 'vip')"
    assert label.request.json == {"label_id": "{label_id of 'vip'}"}


def test_a_ticket_without_follow_ups_is_unchanged() -> None:
    (search, opened) = plan_steps(track(event_key="m1"), TrengoConfig())
    assert opened.when == "always (no contact found → dead letter)"
    assert search.request.params == {"page": "1", "term": "ann@example.com"}


def test_a_group_never_creates_its_contact() -> None:
    plan = GroupPlan("acme-1", EMAIL, ResolveProfile("acme-1", 2001, "Acme", "7"))
    search, profiles, by_name, create, key, rename, attach = plan_steps(plan, TrengoConfig())
    assert search.when.endswith("none → dead letter (a group never creates a contact)")
    assert profiles.request.params == {"page": "1", "term": "acme-1"}
    assert "custom field 2001 is exactly 'acme-1'" in profiles.when
    assert by_name.request.params == {"page": "1", "term": "Acme"}
    assert create.request.json == {"name": "Acme"}
    assert key.request.json == {"custom_field_id": 2001, "value": "acme-1"}
    assert rename.request.json == {"name": "Acme"}
    assert attach.request.json == {"contact_id": "{contact_id}", "type": "{channel_type}"}
    assert "channel 7's type" in attach.when


def test_a_group_named_by_its_key_searches_once() -> None:
    plan = GroupPlan("acme-1", KNOWN, ResolveProfile("acme-1", 2001, "acme-1", "7"))
    searches = [step for step in plan_steps(plan, TrengoConfig()) if step.request.method == "GET"]
    assert [step.request.params["term"] for step in searches] == ["acme-1"]


def test_render_shows_unknown_ids_readably() -> None:
    settings = Settings(
        destination={
            "apiToken": "t",
            "channelId": "7",
            "eventTemplateMap": [{"from": "Order Completed", "to": "Order", "labels": ["vip"]}],
        }
    )
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m1",
        "context": {"traits": {"email": "ann@example.com"}},
    }
    out = render_event(json.dumps(event).encode(), settings)
    assert "POST https://app.trengo.com/api/v2/tickets/{ticket_id}/labels" in out
    assert """body: {"label_id": "{label_id of 'vip'}"}""" in out
