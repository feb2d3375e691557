"""A seeded workload of RudderStack events: identifies and mapped tracks of many users.

Shape (``WorkloadSpec``): ``users`` users, ``events`` events, an ``identify_share`` of them
identifies and the rest tracks of events the destination maps to ticket subjects. Every user's
first event is an identify (so the contact exists before its first ticket, as in real traffic,
where a user signs up before ordering). A ``rename_share`` of the identifies give the user a new
name; the others repeat the name the user already has. Renames are drawn from the identifies
that are not a user's first, so each one really changes a name. The Kafka key is the userId.

The same spec and seed always give the same events, byte for byte.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from devkit.sandbox.trengo import DEFAULT_CHANNELS

EventKind = Literal["first_identify", "repeat_identify", "rename", "track"]

EMAIL_CHANNEL_ID = next(channel.id for channel in DEFAULT_CHANNELS if channel.type == "EMAIL")
MAPPED_EVENTS = ("Order Completed", "Product Reviewed", "Subscription Renewed")
# The destination config (RudderStack's keys) the workload is meant for, minus the token.
DESTINATION: Mapping[str, Any] = {
    "channelId": str(EMAIL_CHANNEL_ID),
    "channelIdentifier": "email",
    "enableDedup": True,
    "eventTemplateMap": [
        {"from": "Order Completed", "to": "Order {{ order_id }} completed: {{ revenue }} EUR"},
        {"from": "Product Reviewed", "to": "Review of {{ sku }}: {{ rating }} stars"},
        {"from": "Subscription Renewed", "to": "{{ event }} ({{ plan }})"},
    ],
}
_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Donald", "Frances")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Knuth", "Allen")
_START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """How many users and events, which shares, and the seed."""

    users: int = 2_000
    events: int = 20_000
    identify_share: float = 0.2
    rename_share: float = 0.1  # of the identifies
    seed: int = 6

    @property
    def identifies(self) -> int:
        """Identify events in the workload."""
        return round(self.events * self.identify_share)

    @property
    def renames(self) -> int:
        """Identifies that change the user's name."""
        return round(self.identifies * self.rename_share)

    def check(self) -> None:
        """Raise ValueError when the shares cannot be met with these counts."""
        if self.users < 1 or self.identifies < self.users:
            raise ValueError(f"need at least one identify per user: {self}")
        if self.renames > self.identifies - self.users:
            raise ValueError(f"more renames than identifies after users' first ones: {self}")


@dataclass(frozen=True, slots=True)
class BenchEvent:
    """One Kafka record of the workload and what kind of event it is."""

    key: bytes
    value: bytes
    kind: EventKind


@dataclass(frozen=True, slots=True)
class Workload:
    """The generated events, in the order they are produced."""

    spec: WorkloadSpec
    events: tuple[BenchEvent, ...]

    def count(self, *kinds: EventKind) -> int:
        """How many events are of one of ``kinds``."""
        counts = Counter(event.kind for event in self.events)
        return sum(counts[kind] for kind in kinds)


def generate(spec: WorkloadSpec) -> Workload:
    """The workload ``spec`` describes (deterministic for a given spec)."""
    spec.check()
    rng = random.Random(spec.seed)
    slots = _ordered_slots(spec, rng)
    people = _People(rng)
    events = tuple(
        _event(index, user, kind, people, rng) for index, (user, kind) in enumerate(slots)
    )
    return Workload(spec, events)


def _ordered_slots(spec: WorkloadSpec, rng: random.Random) -> list[tuple[int, EventKind]]:
    """(user, kind) for every event, shuffled, with each user's first event an identify."""
    extra_identifies = spec.identifies - spec.users
    tracks = spec.events - spec.identifies
    renamed = set(rng.sample(range(extra_identifies), spec.renames))
    slots: list[tuple[int, EventKind]] = [(user, "first_identify") for user in range(spec.users)]
    slots += [
        (rng.randrange(spec.users), "rename" if number in renamed else "repeat_identify")
        for number in range(extra_identifies)
    ]
    slots += [(rng.randrange(spec.users), "track") for _ in range(tracks)]
    rng.shuffle(slots)
    _move_first_identifies_ahead(slots)
    return slots


def _move_first_identifies_ahead(slots: list[tuple[int, EventKind]]) -> None:
    """Swap each user's first identify into that user's earliest slot (same user: the per-user
    mix of kinds is unchanged, only their order)."""
    earliest: dict[int, int] = {}
    first_identify_at: dict[int, int] = {}
    for position, (user, kind) in enumerate(slots):
        earliest.setdefault(user, position)
        if kind == "first_identify":
            first_identify_at[user] = position
    for user, position in earliest.items():
        other = first_identify_at[user]
        slots[position], slots[other] = slots[other], slots[position]


class _People:
    """Each user's email and current name; renames pick another last name."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._names: dict[int, tuple[str, str]] = {}

    def email(self, user: int) -> str:
        return f"user{user:06d}@bench.example"

    def name(self, user: int, kind: EventKind) -> str:
        if kind == "first_identify":
            self._names[user] = (self._rng.choice(_FIRST_NAMES), self._rng.choice(_LAST_NAMES))
        elif kind == "rename":
            first, last = self._names[user]
            others = [name for name in _LAST_NAMES if name != last]
            self._names[user] = (first, self._rng.choice(others))
        first, last = self._names[user]
        return f"{first} {last}"


def _event(
    index: int, user: int, kind: EventKind, people: _People, rng: random.Random
) -> BenchEvent:
    user_id = f"user-{user:06d}"
    email = people.email(user)
    if kind == "track":
        body = _track(user_id, email, rng)
    else:
        body = {
            "type": "identify",
            "userId": user_id,
            "traits": {"email": email, "name": people.name(user, kind)},
        }
    stamped = {
        **body,
        "messageId": f"bench-{index:07d}",
        "anonymousId": f"anon-{user:06d}",
        "timestamp": (_START + timedelta(milliseconds=index)).isoformat(),
        "context": {**body.get("context", {}), "library": {"name": "bench"}},
    }
    return BenchEvent(user_id.encode(), json.dumps(stamped).encode(), kind)


def _track(user_id: str, email: str, rng: random.Random) -> dict[str, Any]:
    event = rng.choice(MAPPED_EVENTS)
    properties: dict[str, Any] = {
        "order_id": f"{rng.randrange(100_000, 999_999)}",
        "revenue": rng.randrange(5, 900),
        "sku": f"SKU-{rng.randrange(1000):03d}",
        "rating": rng.randrange(1, 6),
        "plan": rng.choice(("monthly", "yearly")),
    }
    return {
        "type": "track",
        "event": event,
        "userId": user_id,
        "properties": properties,
        "context": {"traits": {"email": email}},
    }
