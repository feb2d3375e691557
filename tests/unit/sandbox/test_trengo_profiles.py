"""The sandbox's profiles: their search over many chunks, changes, attached contacts, ids."""

from __future__ import annotations

import math

from devkit.sandbox._trengo_model import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    PAGE_SIZE,
    TrengoData,
)
from devkit.sandbox._trengo_profiles import FIRST_PROFILE_ID, ProfileBook, profile_timestamp

EMAIL = DEFAULT_CHANNELS[0]
EXTERNAL_ID = DEFAULT_CUSTOM_FIELDS[2]
CREATED_AT = "2026-01-01 00:00:00"
# More than two search chunks, so chunk skipping and re-indexing are both exercised.
MANY_PROFILES = 1_100


def found_names(book: ProfileBook, term: str, page: int = 1) -> list[str]:
    return [profile.name for profile in book.search(term, page).items]


def test_search_pages_through_matches_across_chunks() -> None:
    book = ProfileBook()
    for number in range(MANY_PROFILES):
        book.create(f"Shop {number}", CREATED_AT)
        book.create(f"Other {number}", CREATED_AT)

    page_count = math.ceil(MANY_PROFILES / PAGE_SIZE)
    pages = [book.search("SHOP", page) for page in range(1, page_count + 1)]

    assert [p.name for page in pages for p in page.items] == [
        f"Shop {n}" for n in range(MANY_PROFILES)
    ]
    assert [page.has_more for page in pages] == [True] * (len(pages) - 1) + [False]


def test_a_renamed_profile_is_found_by_its_new_name_only_never_by_a_field_value() -> None:
    book = ProfileBook()
    first = book.create("Old Name", CREATED_AT)
    for number in range(MANY_PROFILES):
        book.create(f"Shop {number}", CREATED_AT)
    assert found_names(book, "old name")  # caches the search text of every chunk

    book.rename(first, "New Name")
    book.set_field(first, EXTERNAL_ID, "acme-1")

    assert found_names(book, "  NEW name ") == ["New Name"]
    assert found_names(book, "old name") == found_names(book, "ACME-1") == []


def test_attaching_a_contact_twice_lists_it_once_and_shows_its_current_name() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "jo@example.com", "Jo", CREATED_AT)
    profile = ProfileBook().create("Acme", CREATED_AT)

    profile.attach_contact(contact)
    profile.attach_contact(contact)
    data.update_contact(contact, "Joanna", None)

    assert profile.to_json()["contacts"] == [
        {"id": contact.id, "name": "Joanna", "identifier": "jo@example.com"}
    ]


def test_an_attached_contact_lists_its_profiles_under_their_current_name() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "jo@example.com", "Jo", CREATED_AT)
    book = ProfileBook()
    acme, globex = book.create("Acme", CREATED_AT), book.create("Globex", CREATED_AT)
    assert contact.to_json()["profile"] == []

    acme.attach_contact(contact)
    globex.attach_contact(contact)
    book.rename(acme, "Acme Inc")

    assert contact.to_json()["profile"] == [
        {"id": acme.id, "name": "Acme Inc"},
        {"id": globex.id, "name": "Globex"},
    ]


def test_profile_json_is_the_captured_shape_with_fields_by_title_and_by_id() -> None:
    book = ProfileBook()
    profile = book.create("acme", CREATED_AT)
    fresh = profile.to_json()

    book.set_field(profile, EXTERNAL_ID, "acme-0")
    book.set_field(profile, EXTERNAL_ID, "acme-1")

    assert fresh == {
        "id": FIRST_PROFILE_ID,
        "name": "acme",
        "abbr": "A",
        "color": fresh["color"],
        "created_at": CREATED_AT,
        "user": None,
        "notes": [],
        "custom_field_data": None,
        "custom_field_values": [],
        "custom_fields": [],
        "contacts": [],
    }
    keyed = profile.to_json()
    assert keyed["custom_field_data"] == {"External ID": "acme-1"}
    assert keyed["custom_field_values"] == [
        {"custom_field_id": 2001, "field_name": "External ID", "value": "acme-1"}
    ]
    assert keyed["custom_fields"] == [
        {
            "id": 2001,
            "title": "External ID",
            "type": "PROFILE",
            "field_type": "TEXT",
            "pivot": {"profile_id": FIRST_PROFILE_ID, "custom_field_id": 2001, "value": "acme-1"},
        }
    ]


def test_profile_timestamps_are_written_as_captured() -> None:
    assert profile_timestamp(1_656_267_620.9) == "2022-06-26 18:20:20"


def test_ids_are_64_bit_and_restart_after_clear() -> None:
    book = ProfileBook()
    first = book.create("A", CREATED_AT)
    second = book.create("B", CREATED_AT)

    book.clear()
    again = book.create("C", CREATED_AT)

    assert (first.id, second.id) == (FIRST_PROFILE_ID, FIRST_PROFILE_ID + 1)
    assert FIRST_PROFILE_ID > 2**32
    assert again.id == FIRST_PROFILE_ID
    assert found_names(book, "") == ["C"]
