"""Expiring maps: bounded, forgetting after their TTL, and off at size or TTL zero."""

from __future__ import annotations

import pytest

from processor.trengo.expiring import Expiring


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remembers_until_the_ttl_then_forgets() -> None:
    clock = Clock()
    memory: Expiring[str, int] = Expiring(10, 60, clock=clock)
    memory.put("a", 1)
    clock.now = 59.9
    assert memory.get("a") == 1
    clock.now = 60.0
    assert memory.get("a") is None


def test_keeps_at_most_size_entries_dropping_the_least_recently_used() -> None:
    memory: Expiring[str, int] = Expiring(2, 60, clock=Clock())
    memory.put("a", 1)
    memory.put("b", 2)
    memory.get("a")
    memory.put("c", 3)
    assert (memory.get("a"), memory.get("b"), memory.get("c"), len(memory)) == (1, None, 3, 2)


def test_pop_forgets_a_key() -> None:
    memory: Expiring[str, int] = Expiring(2, 60, clock=Clock())
    memory.put("a", 1)
    memory.pop("a")
    memory.pop("never there")
    assert memory.get("a") is None


@pytest.mark.parametrize(("size", "ttl"), [(0, 60), (10, 0)])
def test_size_or_ttl_zero_remembers_nothing(size: int, ttl: float) -> None:
    memory: Expiring[str, int] = Expiring(size, ttl, clock=Clock())
    memory.put("a", 1)
    memory.pop("a")
    assert (memory.get("a"), len(memory)) == (None, 0)


def test_forget_values_drops_every_entry_whose_value_matches() -> None:
    memory: Expiring[str, int] = Expiring(10, 60, clock=Clock())
    for key, value in (("a", 1), ("b", 2), ("c", 1)):
        memory.put(key, value)
    memory.forget_values(lambda value: value == 1)
    assert [memory.get(key) for key in "abc"] == [None, 2, None]
    assert len(memory) == 1
