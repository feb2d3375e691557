"""Request builders: paths, bodies (None dropped, empty subject kept), operation labels and URL
encoding."""

from __future__ import annotations

import pytest
import yarl

from processor.pipeline.plan import (
    CreateContact,
    CreateTicket,
    PostMessage,
    SetCustomField,
    UpdateContact,
)
from processor.trengo import endpoints
from processor.trengo.endpoints import TrengoRequest

BASE = "https://app.trengo.com/api/v2/"


def test_search_contacts_asks_for_page_one_by_term() -> None:
    request = endpoints.search_contacts("jane@example.com")
    assert (request.operation, request.method, request.path) == (
        "search_contacts",
        "GET",
        "/contacts",
    )
    assert request.params == {"page": "1", "term": "jane@example.com"}
    assert request.json is None


@pytest.mark.parametrize(
    ("term", "query"),
    [
        ("jane+news@example.com", "term=jane%2Bnews@example.com"),
        ("+31 6 1234", "term=%2B31%206%201234"),
        ("a&b#c=d;e", "term=a%26b%23c%3Dd%3Be"),
        ("josé@ü.de", "term=jos%C3%A9@%C3%BC.de"),
        ("null", "term=null"),
    ],
)
def test_url_percent_encodes_the_term(term: str, query: str) -> None:
    assert endpoints.url(BASE, endpoints.search_contacts(term)) == (
        f"https://app.trengo.com/api/v2/contacts?page=1&{query}"
    )


@pytest.mark.parametrize(
    "term", ["jane+news@example.com", "a&b#c=d;e", "o'neil/x?y:z,$!*()", "é 中 %"]
)
def test_url_is_what_the_aiohttp_transport_sends(term: str) -> None:
    built = endpoints.url(BASE, endpoints.search_contacts(term))
    assert str(yarl.URL(built)) == built
    assert yarl.URL(built).query["term"] == term


def test_create_contact_drops_none_and_keeps_the_identifier_type() -> None:
    request = endpoints.create_contact(CreateContact("89X02", 31612345678, None))
    assert (request.operation, request.method) == ("create_contact", "POST")
    assert request.path == "/channels/89X02/contacts"
    assert request.json == {"identifier": 31612345678, "channel_id": "89X02"}


def test_create_contact_with_a_name() -> None:
    request = endpoints.create_contact(CreateContact("7", "jane@example.com", "Jane Doe"))
    assert request.json == {"name": "Jane Doe", "identifier": "jane@example.com", "channel_id": "7"}


def test_update_contact_sends_only_the_name() -> None:
    request = endpoints.update_contact(90002431001, UpdateContact("Jane"))
    assert (request.operation, request.method, request.path) == (
        "update_contact",
        "PUT",
        "/contacts/90002431001",
    )
    assert request.json == {"name": "Jane"}
    assert endpoints.update_contact(5, UpdateContact(None)).json == {}


def test_path_segments_are_escaped() -> None:
    assert endpoints.update_contact("a/b", UpdateContact("x")).path == "/contacts/a%2Fb"


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        (
            "Order 5 completed",
            {"contact_id": 12, "channel_id": "7", "subject": "Order 5 completed"},
        ),
        ("", {"contact_id": 12, "channel_id": "7", "subject": ""}),
        (None, {"contact_id": 12, "channel_id": "7"}),
    ],
)
def test_create_ticket_body(subject: str | None, body: dict[str, object]) -> None:
    request = endpoints.create_ticket(12, CreateTicket("7", subject))
    assert (request.operation, request.method, request.path) == (
        "create_ticket",
        "POST",
        "/tickets",
    )
    assert request.json == body


def test_url_without_query() -> None:
    request = endpoints.create_ticket(1, CreateTicket("7", None))
    assert endpoints.url(BASE, request) == "https://app.trengo.com/api/v2/tickets"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            endpoints.set_contact_custom_field(90002431001, SetCustomField(1001, "pro")),
            (
                "set_contact_custom_field",
                "POST",
                "/contacts/90002431001/custom_fields",
                {},
                {"custom_field_id": 1001, "value": "pro"},
            ),
        ),
        (
            endpoints.post_message(77, PostMessage("Thanks!", internal_note=True)),
            (
                "post_message",
                "POST",
                "/tickets/77/messages",
                {},
                {"message": "Thanks!", "internal_note": True},
            ),
        ),
        (endpoints.list_labels(3), ("list_labels", "GET", "/labels", {"page": "3"}, None)),
        (endpoints.list_channels(2), ("list_channels", "GET", "/channels", {"page": "2"}, None)),
        (
            endpoints.list_custom_fields(1),
            ("list_custom_fields", "GET", "/custom_fields", {"page": "1"}, None),
        ),
        (
            endpoints.attach_label(77, 3001),
            ("attach_label", "POST", "/tickets/77/labels", {}, {"label_id": 3001}),
        ),
        (
            endpoints.search_profiles("acme-1"),
            ("search_profiles", "GET", "/profiles", {"page": "1", "term": "acme-1"}, None),
        ),
        (
            endpoints.search_profiles("acme-1", page=2),
            ("search_profiles", "GET", "/profiles", {"page": "2", "term": "acme-1"}, None),
        ),
        (
            endpoints.create_profile("Acme"),
            ("create_profile", "POST", "/profiles", {}, {"name": "Acme"}),
        ),
        (
            endpoints.rename_profile(9001, "Acme Inc"),
            ("rename_profile", "PUT", "/profiles/9001", {}, {"name": "Acme Inc"}),
        ),
        (
            endpoints.set_profile_custom_field(9001, 2001, "acme-1"),
            (
                "set_profile_custom_field",
                "POST",
                "/profiles/9001/custom_fields",
                {},
                {"custom_field_id": 2001, "value": "acme-1"},
            ),
        ),
        (
            endpoints.attach_contact_to_profile(9001, 90002431001, "WA_BUSINESS"),
            (
                "attach_contact_to_profile",
                "POST",
                "/profiles/9001/contacts",
                {},
                {"contact_id": 90002431001, "type": "WA_BUSINESS"},
            ),
        ),
    ],
    ids=lambda value: value.operation if isinstance(value, TrengoRequest) else "",
)
def test_builders_of_the_follow_up_calls(
    request_: TrengoRequest, expected: tuple[str, str, str, dict[str, str], object]
) -> None:
    assert (
        request_.operation,
        request_.method,
        request_.path,
        request_.params,
        request_.json,
    ) == expected


def test_a_customer_message_is_not_an_internal_note() -> None:
    request = endpoints.post_message(77, PostMessage("Hi", internal_note=False))
    assert request.json == {"message": "Hi", "internal_note": False}


def test_profile_search_terms_are_encoded() -> None:
    assert endpoints.url(BASE, endpoints.search_profiles("a+b c")) == (
        "https://app.trengo.com/api/v2/profiles?page=1&term=a%2Bb%20c"
    )
