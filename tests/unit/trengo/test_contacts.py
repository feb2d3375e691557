"""Exact-match filter, contact-id cache (LRU, TTL, invalidation, metrics), sent names and sent
custom field values, and the cache-then-resolve step contacts and profiles share."""

from __future__ import annotations

from typing import Any

import pytest

from processor.metrics import CONTACT_CACHE_REQUESTS
from processor.pipeline.plan import ChannelIdentifier, JsonScalar
from processor.trengo.contacts import (
    NOT_CACHED,
    ContactCache,
    NotCached,
    SentFields,
    SentNames,
    contact_key,
    exact_matches,
    on_channel,
    with_cached_id,
)
from processor.trengo.endpoints import TrengoId
from processor.trengo.errors import PermanentError, TransientError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def contact(contact_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": contact_id, "email": None, "phone": None, "identifier": None, **fields}


SEARCH_RESULTS = [
    contact(1, email="Jane.Doe@Example.com", identifier="Jane.Doe@Example.com"),
    contact(2, email="jane.doe@example.com.au", identifier="jane.doe@example.com.au"),
    contact(3, email="notjane.doe@example.com", name="jane.doe@example.com"),
    contact(4, phone="+98 30311521", identifier="+98 30311521"),
    contact(5, phone="+98 303115210", identifier="+98 303115210"),
    contact(6, identifier="jane.doe@example.com"),
    contact(7, formatted_phone="+31 6 1234 5678"),
    contact(8, phone=None, identifier=None, name="9830311521"),
]


@pytest.mark.parametrize(
    ("identifier", "channel_identifier", "ids"),
    [
        ("jane.doe@example.com", "email", [1, 6]),
        ("  JANE.DOE@EXAMPLE.COM ", "email", [1, 6]),
        ("jane.doe@example", "email", []),
        ("9830311521", "phone", [4]),
        (9830311521, "phone", [4]),
        ("+98 303-115-21", "phone", [4]),
        ("31612345678", "phone", [7]),
        ("983031152", "phone", []),
        ("", "email", []),
        ("no digits", "phone", []),
        (None, "email", []),
    ],
)
def test_exact_matches(
    identifier: JsonScalar, channel_identifier: ChannelIdentifier, ids: list[int]
) -> None:
    matches = exact_matches(SEARCH_RESULTS, identifier, channel_identifier)
    assert [match["id"] for match in matches] == ids


def test_odd_field_types_never_match() -> None:
    odd = [{"id": 1, "email": True, "phone": ["1"], "identifier": {"x": 1}}]
    assert exact_matches(odd, "1", "phone") == []
    assert exact_matches(odd, "true", "email") == []


def test_on_channel_narrows_by_channel_id() -> None:
    contacts: list[dict[str, Any]] = [
        {"id": 1, "channels": [{"id": 650578, "type": "VOIP"}]},
        {"id": 2, "channels": [{"id": 12, "type": "SMS"}, "junk"]},
        {"id": 3, "channels": None},
        {"id": 4},
    ]
    assert [match["id"] for match in on_channel(contacts, "12")] == [2]
    assert on_channel(contacts, "99") == []


def test_contact_key_normalises_the_identifier() -> None:
    assert contact_key("7", "Jane@X.com", "email") == ("7", "jane@x.com")
    assert contact_key("7", "+31 6-12", "phone") == ("7", "31612")


def cache_count(result: str) -> float:
    return float(CONTACT_CACHE_REQUESTS.labels(result=result)._value.get())


def test_cache_hit_and_miss_are_counted() -> None:
    cache = ContactCache(10, 60)
    key = contact_key("7", "a@x.com", "email")
    hits, misses = cache_count("hit"), cache_count("miss")
    assert cache.get(key) is None
    cache.put(key, 42)
    assert cache.get(contact_key("7", "A@X.COM", "email")) == 42
    assert (cache_count("hit") - hits, cache_count("miss") - misses) == (1, 1)


def test_cache_is_per_channel() -> None:
    cache = ContactCache(10, 60)
    cache.put(contact_key("7", "a@x.com", "email"), 42)
    assert cache.get(contact_key("8", "a@x.com", "email")) is None


def test_cache_entries_expire() -> None:
    clock = FakeClock()
    cache = ContactCache(10, 60, clock=clock)
    key = contact_key("7", "a@x.com", "email")
    cache.put(key, 42)
    clock.now = 59.9
    assert cache.get(key) == 42
    clock.now = 60.0
    assert cache.get(key) is None


def test_cache_evicts_the_least_recently_used() -> None:
    cache = ContactCache(2, 60)
    first, second, third = (contact_key("7", f"{name}@x.com", "email") for name in "abc")
    cache.put(first, 1)
    cache.put(second, 2)
    assert cache.get(first) == 1  # first is now the most recently used
    cache.put(third, 3)
    assert (cache.get(first), cache.get(second), cache.get(third)) == (1, None, 3)
    assert len(cache) == 2


def test_invalidate_contact_drops_every_key_of_that_id() -> None:
    cache = ContactCache(10, 60)
    email, other, same = (contact_key("7", f"{name}@x.com", "email") for name in "abc")
    cache.put(email, 42)
    cache.put(other, 43)
    cache.put(same, "42")
    cache.invalidate_contact(42)
    assert (cache.get(email), cache.get(other), cache.get(same)) == (None, 43, None)


@pytest.mark.parametrize(("size", "ttl"), [(0, 60), (10, 0)])
def test_cache_can_be_turned_off(size: int, ttl: float) -> None:
    cache = ContactCache(size, ttl)
    key = contact_key("7", "a@x.com", "email")
    cache.put(key, 42)
    cache.invalidate_contact(42)
    assert cache.get(key) is None and len(cache) == 0


def test_an_empty_identifier_is_never_cached() -> None:
    cache = ContactCache(10, 60)
    key = contact_key("7", "no digits", "phone")
    cache.put(key, 42)
    assert cache.get(key) is None


def test_sent_names() -> None:
    clock = FakeClock()
    names = SentNames(10, 60, clock=clock)
    assert not names.is_unchanged(42, "Jane")
    names.remember(42, "Jane")
    assert names.is_unchanged("42", "Jane")
    assert not names.is_unchanged(42, "Jane Doe")
    names.forget(42)
    assert not names.is_unchanged(42, "Jane")
    names.remember(42, "Jane")
    clock.now = 61
    assert not names.is_unchanged(42, "Jane")


def test_sent_names_are_bounded() -> None:
    names = SentNames(2, 60)
    for contact_id in (1, 2, 3):
        names.remember(contact_id, "x")
    assert [names.is_unchanged(contact_id, "x") for contact_id in (1, 2, 3)] == [False, True, True]


def test_sent_names_can_be_turned_off() -> None:
    names = SentNames(0, 60)
    names.remember(1, "x")
    names.forget(1)
    assert not names.is_unchanged(1, "x")


def test_sent_fields_are_per_contact_and_field() -> None:
    clock = FakeClock()
    fields = SentFields(10, 60, clock=clock)
    assert not fields.is_unchanged(42, 1001, "pro")
    fields.remember(42, 1001, "pro")
    assert fields.is_unchanged("42", 1001, "pro")
    assert not fields.is_unchanged(42, 1001, "enterprise")
    assert not fields.is_unchanged(42, 1002, "pro")
    assert not fields.is_unchanged(43, 1001, "pro")
    clock.now = 61
    assert not fields.is_unchanged(42, 1001, "pro")


def test_sent_fields_can_be_turned_off() -> None:
    fields = SentFields(0, 60)
    fields.remember(1, 1001, "x")
    assert not fields.is_unchanged(1, 1001, "x")


STALE = PermanentError("update_contact: HTTP 404 Not Found", 404)


@pytest.mark.parametrize(
    ("cached", "answer", "result", "forgotten", "raised"),
    [
        pytest.param(None, None, NOT_CACHED, [], None, id="nothing-cached-no-call"),
        pytest.param(7, None, "written 7", [], None, id="cached-id-works"),
        pytest.param(7, STALE, NOT_CACHED, [7], None, id="stale-id-forgotten"),
        pytest.param(
            7, PermanentError("HTTP 422", 422), None, [], PermanentError, id="other-refusal"
        ),
        pytest.param(7, TransientError("HTTP 503", 503), None, [], TransientError, id="transient"),
    ],
)
async def test_with_cached_id_writes_with_the_cached_id_or_hands_back_to_resolving(
    cached: TrengoId | None,
    answer: Exception | None,
    result: str | NotCached | None,
    forgotten: list[TrengoId],
    raised: type[Exception] | None,
) -> None:
    written: list[TrengoId] = []
    dropped: list[TrengoId] = []

    async def write(contact_id: TrengoId) -> str:
        written.append(contact_id)
        if answer is not None:
            raise answer
        return f"written {contact_id}"

    def stale(error: PermanentError) -> bool:
        return error.status == 404

    if raised is not None:
        with pytest.raises(raised):
            await with_cached_id(cached, write, stale=stale, forget=dropped.append)
    else:
        assert await with_cached_id(cached, write, stale=stale, forget=dropped.append) == result
    assert written == ([] if cached is None else [cached])
    assert dropped == forgotten


async def test_a_write_that_returns_none_is_done_not_a_miss() -> None:
    written: list[TrengoId] = []

    async def write(contact_id: TrengoId) -> None:
        written.append(contact_id)

    done = await with_cached_id(7, write, stale=lambda _: True, forget=written.append)
    assert (done, written) == (None, [7])
