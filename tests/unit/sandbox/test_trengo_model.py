"""The sandbox's data: fuzzy search, its chunked index, find-or-create, pagination, custom
fields, labels and messages."""

from __future__ import annotations

import pytest

from devkit.sandbox._trengo_model import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    FIRST_CONTACT_ID,
    FIRST_LABEL_ID,
    FIRST_MESSAGE_ID,
    FIRST_TICKET_ID,
    PAGE_SIZE,
    SandboxChannel,
    TrengoData,
    labels_from_names,
    laravel_timestamp,
    paginate,
    simple_pagination_json,
)

EMAIL, WHATSAPP = DEFAULT_CHANNELS
CREATED_AT = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-01T00:01:00.000000Z"
LATER_STILL = "2026-01-01T00:02:00.000000Z"
# More than two search chunks, so chunk skipping and chunk boundaries are both exercised.
MANY_CONTACTS = 1_100


def add(data: TrengoData, channel: SandboxChannel, identifier: str, name: str | None = None) -> int:
    contact, _ = data.find_or_create_contact(channel, identifier, name, CREATED_AT)
    return contact.id


@pytest.fixture
def people() -> tuple[TrengoData, dict[str, int]]:
    data = TrengoData(DEFAULT_CHANNELS)
    ids = {
        "anna": add(data, EMAIL, "Anna.Smith@Example.com", "Anna Smith"),
        "bob": add(data, EMAIL, "bob@example.org", "Bob Anna"),
        "reza": add(data, WHATSAPP, "+98 30311521", "Reza"),
        "dutch": add(data, WHATSAPP, "+31 6 1234 5678"),
    }
    return data, ids


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("anna", ["anna", "bob"]),
        ("EXAMPLE.COM", ["anna"]),
        ("  smith ", ["anna"]),
        ("9830311521", ["reza"]),
        ("+98 303", ["reza"]),
        ("(98) 303-11", ["reza"]),
        ("6 1234 5678", ["dutch"]),
        ("31612345678", ["dutch"]),
        ("0612345678", []),
        ("nobody", []),
        ("", ["anna", "bob", "reza", "dutch"]),
    ],
)
def test_search_is_case_insensitive_substring_and_phone_digits(
    people: tuple[TrengoData, dict[str, int]], term: str, expected: list[str]
) -> None:
    data, ids = people

    found = [contact.id for contact in data.search(term, page=1).items]

    assert found == [ids[name] for name in expected]


def test_digits_match_only_phone_like_terms() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    add(data, WHATSAPP, "+31 6 1234 5678")

    assert data.search("x612", page=1).items == []


def test_search_pages_through_every_match_across_chunks() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    for number in range(MANY_CONTACTS):
        add(data, EMAIL, f"user{number}@example.com")
        add(data, WHATSAPP, f"+31 {number}")  # does not match "user"
    pages = []
    page = 1
    while True:
        result = data.search("USER", page)
        pages.append(result)
        if not result.has_more:
            break
        page += 1

    found = [contact.identifier for result in pages for contact in result.items]

    assert found == [f"user{number}@example.com" for number in range(MANY_CONTACTS)]
    assert [len(result.items) for result in pages[:-1]] == [PAGE_SIZE] * (len(pages) - 1)


def test_rename_is_searchable_in_any_chunk() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    first_id = add(data, EMAIL, "first@example.com", "Old Name")
    for number in range(MANY_CONTACTS):
        add(data, EMAIL, f"user{number}@example.com")
    assert data.search("old name", 1).items  # caches the search text of every chunk

    data.update_contact(data.contacts[first_id], "Brand New", (7,))

    assert [c.id for c in data.search("brand new", 1).items] == [first_id]
    assert data.search("old name", 1).items == []
    assert data.contacts[first_id].group_ids == (7,)


def test_email_contacts_are_found_again_per_channel_case_insensitively() -> None:
    second_email = SandboxChannel(id=7, type="EMAIL", title="Sales")
    data = TrengoData((*DEFAULT_CHANNELS, second_email))

    first, created = data.find_or_create_contact(EMAIL, "Jo@Example.com", "Jo", CREATED_AT)
    again, created_again = data.find_or_create_contact(EMAIL, "jo@example.COM", None, CREATED_AT)
    elsewhere, created_elsewhere = data.find_or_create_contact(
        second_email, "jo@example.com", None, CREATED_AT
    )

    assert (created, created_again, created_elsewhere) == (True, False, True)
    assert again is first
    assert again.name == "Jo"
    assert elsewhere.id != first.id


def test_phone_contacts_are_duplicated_and_get_a_plus() -> None:
    data = TrengoData(DEFAULT_CHANNELS)

    first, _ = data.find_or_create_contact(WHATSAPP, "31612345678", None, CREATED_AT)
    second, created = data.find_or_create_contact(WHATSAPP, "31612345678", None, CREATED_AT)

    assert created
    assert first.id != second.id
    assert first.phone == second.identifier == "+31612345678"
    assert [c.id for c in data.search("31612345678", 1).items] == [first.id, second.id]


def test_ids_are_64_bit_and_restart_after_clear() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "a@b.c", None, CREATED_AT)
    ticket = data.create_ticket(EMAIL, contact, None, CREATED_AT)
    assert contact.id == FIRST_CONTACT_ID > 2**32
    assert ticket.id == FIRST_TICKET_ID > 2**32

    data.clear()
    again, _ = data.find_or_create_contact(EMAIL, "a@b.c", None, CREATED_AT)

    assert again.id == FIRST_CONTACT_ID
    assert data.tickets == {}
    assert data.search("", 1).items == [again]


def test_pagination_envelope_is_laravel_simple_pagination() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    for number in range(PAGE_SIZE + 1):
        add(data, EMAIL, f"user{number}@example.com")
    path = "http://sandbox/api/v2/contacts"

    second_page = simple_pagination_json(data.search("user", 2), path, "&term=user")
    empty_page = simple_pagination_json(data.search("user", 3), path, "&term=user")

    assert second_page["links"] == {
        "first": f"{path}?page=1&term=user",
        "last": None,
        "prev": f"{path}?page=1&term=user",
        "next": None,
    }
    assert second_page["meta"] == {
        "current_page": 2,
        "from": PAGE_SIZE + 1,
        "path": path,
        "per_page": PAGE_SIZE,
        "to": PAGE_SIZE + 1,
    }
    assert empty_page["data"] == []
    assert empty_page["meta"] == {
        "current_page": 3,
        "from": None,
        "path": path,
        "per_page": PAGE_SIZE,
        "to": None,
    }


def test_contact_views_differ_as_in_trengo() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(WHATSAPP, "+98 30311521", "Reza", CREATED_AT)

    created_view = contact.to_json(with_channels=False)
    list_view = contact.to_json()
    detail_view = contact.to_json(with_details=True)

    assert "channels" not in created_view
    assert list_view["channels"] == [WHATSAPP.to_json()]
    assert {"notes", "groups"} <= detail_view.keys()
    assert list_view["display_name"] == "Reza (+98 30311521)"
    assert (list_view["email"], list_view["is_phone"]) == (None, True)


def test_laravel_timestamp() -> None:
    assert laravel_timestamp(1_638_795_773.68) == "2021-12-06T13:02:53.000000Z"


def test_paginate_knows_when_a_page_is_the_last_one() -> None:
    exactly_one_page = paginate(range(PAGE_SIZE), 1)
    one_more = paginate(range(PAGE_SIZE + 1), 1)
    beyond = paginate(range(PAGE_SIZE + 1), 3)

    assert (exactly_one_page.items, exactly_one_page.has_more) == (list(range(PAGE_SIZE)), False)
    assert (len(one_more.items), one_more.has_more) == (PAGE_SIZE, True)
    assert (beyond.items, beyond.number, beyond.has_more) == ([], 3, False)


def test_labels_are_numbered_from_the_first_label_id_in_order() -> None:
    labels = labels_from_names(["lead", "vip"])

    assert [label.to_json() for label in labels.values()] == [
        {"id": FIRST_LABEL_ID, "name": "lead", "color": "#4caf50", "sort_order": 1},
        {"id": FIRST_LABEL_ID + 1, "name": "vip", "color": "#2196f3", "sort_order": 2},
    ]
    assert list(labels) == [FIRST_LABEL_ID, FIRST_LABEL_ID + 1]


def test_contact_custom_fields_show_by_title_with_their_ids_alongside() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "a@b.c", None, CREATED_AT)
    fresh = contact.to_json()
    plan, company = DEFAULT_CUSTOM_FIELDS[:2]

    contact.set_custom_field(plan, "pro")
    contact.set_custom_field(company, "Acme")
    contact.set_custom_field(plan, "free")

    assert (fresh["custom_field_data"], fresh["custom_field_values"]) == (None, [])
    shown = contact.to_json()
    assert shown["custom_field_data"] == {"Plan": "free", "Company": "Acme"}
    assert shown["custom_field_values"] == [
        {"custom_field_id": 1001, "field_name": "Plan", "value": "free"},
        {"custom_field_id": 1002, "field_name": "Company", "value": "Acme"},
    ]
    assert [f["pivot"] for f in shown["custom_fields"]] == [
        {"contact_id": contact.id, "custom_field_id": 1001, "value": "free"},
        {"contact_id": contact.id, "custom_field_id": 1002, "value": "Acme"},
    ]


def test_fields_are_split_by_type() -> None:
    data = TrengoData(DEFAULT_CHANNELS)

    assert list(data.contact_fields) == [1001, 1002]
    assert list(data.profile_fields) == [2001]


def test_a_label_is_attached_once_and_only_a_change_touches_the_ticket() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "a@b.c", None, CREATED_AT)
    ticket = data.create_ticket(EMAIL, contact, None, CREATED_AT)
    vip = data.labels[FIRST_LABEL_ID + 2]

    ticket.add_label(vip, LATER)
    ticket.add_label(vip, LATER_STILL)

    assert ticket.to_json()["labels"] == [vip.to_json()]
    assert ticket.updated_at == LATER


def test_messages_are_numbered_across_tickets_and_restart_after_clear() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "a@b.c", None, CREATED_AT)
    first, second = (data.create_ticket(EMAIL, contact, None, CREATED_AT) for _ in range(2))

    note = data.post_message(first, "note", internal_note=True, posted_at=LATER)
    reply = data.post_message(second, "reply", internal_note=False, posted_at=LATER_STILL)
    ticket_view = second.to_json()
    snapshot_view = second.to_json(with_messages=True)
    data.clear()
    again, _ = data.find_or_create_contact(EMAIL, "a@b.c", None, CREATED_AT)
    after_clear = data.post_message(
        data.create_ticket(EMAIL, again, None, CREATED_AT), "x", internal_note=True, posted_at=LATER
    )

    assert (note.id, reply.id, after_clear.id) == (
        FIRST_MESSAGE_ID,
        FIRST_MESSAGE_ID + 1,
        FIRST_MESSAGE_ID,
    )
    assert (note.to_json()["type"], reply.to_json()["type"]) == ("NOTE", "OUTBOUND")
    assert "messages" not in ticket_view
    assert snapshot_view["messages"] == [reply.to_json()]
    assert (ticket_view["latest_message"], ticket_view["updated_at"]) == (LATER_STILL, LATER_STILL)
    assert data.message_count == 1
