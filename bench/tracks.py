"""The workload of the engine-cost benchmarks: ``Order Completed`` tracks of known contacts.

Every event is a track that the destination (``bench.workload.DESTINATION``) maps to a ticket,
for a user whose contact already exists in the sandbox, so each event costs exactly one
``POST /tickets`` once the processor knows the contact's id (one search per user before that).
The ticket subject carries the event's sequence number (``order_id``), so every ticket the
sandbox records names the event it came from. Key = userId; users are drawn with a seeded RNG.

Tracks rather than the budget benchmark's mix: a minimal baseline can post exactly the same
requests for them (``bench.baseline``), so the comparison measures the engine, not what it saves.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

EVENT_NAME = "Order Completed"
# The subject DESTINATION's template renders for this event, as a str.format pattern.
SUBJECT_FORMAT = "Order {order_id} completed: {revenue} EUR"
_SUBJECT_PREFIX = "Order "


@dataclass(frozen=True, slots=True)
class TrackSpec:
    """How many events for how many users, and the seed of the user draw."""

    events: int
    users: int = 2_000
    seed: int = 9


def email(user: int) -> str:
    """The email (the contact's identifier) of user number ``user``."""
    return f"user{user:06d}@bench.example"


def emails(spec: TrackSpec) -> list[str]:
    """Every user's email, the contacts that must exist before the events are delivered."""
    return [email(user) for user in range(spec.users)]


def records(spec: TrackSpec) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) Kafka records, event 0 first (deterministic for a given spec)."""
    rng = random.Random(spec.seed)
    for sequence in range(spec.events):
        user = rng.randrange(spec.users)
        yield f"user-{user:06d}".encode(), json.dumps(track(sequence, user)).encode()


def track(sequence: int, user: int) -> dict[str, object]:
    """Event number ``sequence``, of user number ``user``."""
    return {
        "type": "track",
        "event": EVENT_NAME,
        "userId": f"user-{user:06d}",
        "anonymousId": f"anon-{user:06d}",
        "messageId": f"bench-track-{sequence:07d}",
        "properties": {"order_id": str(sequence), "revenue": 5 + sequence % 900},
        "context": {"traits": {"email": email(user)}, "library": {"name": "bench"}},
    }


def sequence_of(subject: str) -> int | None:
    """The event number a ticket subject names, or None for another subject."""
    if not subject.startswith(_SUBJECT_PREFIX):
        return None
    number = subject[len(_SUBJECT_PREFIX) :].split(" ", 1)[0]
    return int(number) if number.isdigit() else None
