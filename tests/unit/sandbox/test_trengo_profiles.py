"""The sandbox's profiles: their search over many chunks, changes, attached contacts, ids."""

from __future__ import annotations

import math

from processor.sandbox._trengo_model import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    PAGE_SIZE,
    TrengoData,
)
from processor.sandbox._trengo_profiles import FIRST_PROFILE_ID, ProfileBook

EMAIL = DEFAULT_CHANNELS[0]
EXTERNAL_ID = DEFAULT_CUSTOM_FIELDS[2]
CREATED_AT = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-01T00:01:00.000000Z"
LATER_STILL = "2026-01-01T00:02:00.000000Z"
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


def test_a_renamed_or_rekeyed_profile_is_found_by_its_new_text_only() -> None:
    book = ProfileBook()
    first = book.create("Old Name", CREATED_AT)
    for number in range(MANY_PROFILES):
        book.create(f"Shop {number}", CREATED_AT)
    assert found_names(book, "old name")  # caches the search text of every chunk

    book.rename(first, "New Name", LATER)
    book.set_field(first, EXTERNAL_ID, "acme-1", LATER_STILL)

    assert found_names(book, "  NEW name ") == found_names(book, "ACME-1") == ["New Name"]
    assert found_names(book, "old name") == []
    assert (first.created_at, first.updated_at) == (CREATED_AT, LATER_STILL)


def test_attaching_a_contact_twice_lists_it_once_and_shows_its_current_name() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "jo@example.com", "Jo", CREATED_AT)
    profile = ProfileBook().create("Acme", CREATED_AT)

    profile.attach_contact(contact, LATER)
    profile.attach_contact(contact, LATER_STILL)
    data.update_contact(contact, "Joanna", None)

    assert profile.to_json()["contacts"] == [
        {"id": contact.id, "name": "Joanna", "identifier": "jo@example.com"}
    ]
    assert profile.updated_at == LATER


def test_an_attached_contact_lists_its_profiles_under_their_current_name() -> None:
    data = TrengoData(DEFAULT_CHANNELS)
    contact, _ = data.find_or_create_contact(EMAIL, "jo@example.com", "Jo", CREATED_AT)
    book = ProfileBook()
    acme, globex = book.create("Acme", CREATED_AT), book.create("Globex", CREATED_AT)
    assert contact.to_json()["profile"] == []

    acme.attach_contact(contact, LATER)
    globex.attach_contact(contact, LATER)
    book.rename(acme, "Acme Inc", LATER_STILL)

    assert contact.to_json()["profile"] == [
        {"id": acme.id, "name": "Acme Inc"},
        {"id": globex.id, "name": "Globex"},
    ]


def test_profile_json_shows_fields_by_id_and_null_without_fields() -> None:
    book = ProfileBook()
    profile = book.create("Acme", CREATED_AT)
    fresh = profile.to_json()

    book.set_field(profile, EXTERNAL_ID, "acme-1", LATER)

    assert fresh["custom_field_data"] is None
    assert profile.to_json()["custom_field_data"] == {"2001": "acme-1"}


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
