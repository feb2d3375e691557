"""The workload of the site-stream benchmark: what a RudderStack topic of a whole site carries.

Most of a site's events need no Trengo call: page views (web SDK), screen views (mobile SDK)
and tracks the destination has no template for. ``StreamSpec`` draws, with a seeded RNG, each
event's kind from ``NO_CALL_MIX`` (70 % page, 20 % screen, 10 % unmapped track), and, for the
mixed stream, makes a ``call_share`` of them ``Order Completed`` tracks the destination maps to
a ticket (``bench.tracks.track``: one ``POST /tickets`` for a contact that exists).

Events have the shape and size RudderStack's SDKs send (context with app, library, user agent,
screen, page, locale, ip; ``integrations``, timestamps, ids): about 1 KB each, so parsing costs
what it costs in production. Key = userId, as RudderStack's Kafka destination sets it.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bench.tracks import track

StreamKind = Literal["page", "screen", "unmapped_track", "call"]

# Shares of the events that need no call (issue 19).
NO_CALL_MIX: Mapping[StreamKind, float] = {"page": 0.7, "screen": 0.2, "unmapped_track": 0.1}
UNMAPPED_EVENTS = ("Product Viewed", "Products Searched", "Cart Viewed", "Checkout Started")
_PAGES = ("pricing", "docs", "blog/launch", "features", "signup", "contact", "about")
_SCREENS = ("Home", "Search", "Product", "Cart", "Settings")
_START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
_WEB_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """How many events of how many users, the share needing one call, and the seed."""

    events: int
    users: int = 1_000
    call_share: float = 0.0
    seed: int = 19

    def kind(self, rng: random.Random) -> StreamKind:
        """One event's kind: a call with ``call_share``, else drawn from ``NO_CALL_MIX``."""
        if rng.random() < self.call_share:
            return "call"
        kinds = list(NO_CALL_MIX)
        return rng.choices(kinds, weights=[NO_CALL_MIX[kind] for kind in kinds])[0]


def stream_records(spec: StreamSpec) -> Iterator[tuple[bytes, bytes, StreamKind]]:
    """(key, value, kind) of every event, event 0 first (deterministic for a given spec)."""
    rng = random.Random(spec.seed)
    for sequence in range(spec.events):
        user = rng.randrange(spec.users)
        kind = spec.kind(rng)
        event = _event(kind, sequence, user, rng)
        yield f"user-{user:06d}".encode(), json.dumps(event).encode(), kind


def _event(kind: StreamKind, sequence: int, user: int, rng: random.Random) -> dict[str, object]:
    if kind == "call":
        return track(sequence, user)
    sent = _START + timedelta(milliseconds=sequence * 37)
    common: dict[str, object] = {
        "userId": f"user-{user:06d}",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "originalTimestamp": sent.isoformat(),
        "sentAt": (sent + timedelta(milliseconds=120)).isoformat(),
        "receivedAt": (sent + timedelta(milliseconds=180)).isoformat(),
        "timestamp": (sent + timedelta(milliseconds=60)).isoformat(),
        "request_ip": f"203.0.113.{user % 250}",
        "integrations": {"All": True},
    }
    if kind == "screen":
        return {**common, **_screen(rng), "channel": "mobile"}
    page = _page_context(rng.choice(_PAGES))
    context = {**_web_context(page), "ip": common["request_ip"]}
    if kind == "page":
        return {
            **common,
            "type": "page",
            "name": page["title"],
            "properties": page,
            "context": context,
            "channel": "web",
        }
    properties = {"product_id": f"sku-{rng.randrange(5_000)}", "price": rng.randrange(5, 500)}
    return {
        **common,
        "type": "track",
        "event": rng.choice(UNMAPPED_EVENTS),
        "properties": properties,
        "context": context,
        "channel": "web",
    }


def _page_context(name: str) -> dict[str, str]:
    url = f"https://www.example.com/{name}"
    return {
        "path": f"/{name}",
        "referrer": "https://www.google.com/",
        "referring_domain": "www.google.com",
        "search": "",
        "title": f"{name.title()} | Example",
        "url": url,
        "tab_url": url,
        "initial_referrer": "$direct",
        "initial_referring_domain": "$direct",
    }


def _web_context(page: dict[str, str]) -> dict[str, object]:
    sdk = {"name": "RudderLabs JavaScript SDK", "version": "3.11.4"}
    return {
        "app": {**sdk, "namespace": "com.rudderlabs.javascript", "installType": "npm"},
        "library": sdk,
        "userAgent": _WEB_USER_AGENT,
        "locale": "en-GB",
        "os": {"name": "", "version": ""},
        "screen": {
            "width": 1920,
            "height": 1080,
            "density": 2,
            "innerWidth": 1440,
            "innerHeight": 789,
        },
        "page": page,
        "timezone": "GMT+0100",
        "campaign": {},
        "traits": {},
        "sessionId": 1_764_061_200_000,
    }


def _screen(rng: random.Random) -> dict[str, object]:
    name = rng.choice(_SCREENS)
    return {
        "type": "screen",
        "event": "screen_viewed",
        "name": name,
        "properties": {"name": name, "automatic": False},
        "context": {
            "app": {
                "build": "412",
                "name": "Example",
                "namespace": "com.example.app",
                "version": "4.2.0",
            },
            "device": {
                "id": "a1b2c3d4e5f6",
                "manufacturer": "Google",
                "model": "Pixel 8",
                "name": "shiba",
                "type": "Android",
            },
            "library": {"name": "com.rudderstack.android.sdk.core", "version": "1.25.1"},
            "locale": "en-GB",
            "network": {"carrier": "Vodafone", "bluetooth": False, "cellular": False, "wifi": True},
            "os": {"name": "Android", "version": "15"},
            "screen": {"density": 420, "height": 2400, "width": 1080},
            "timezone": "Europe/Amsterdam",
            "traits": {"anonymousId": "a1b2c3d4e5f6"},
        },
    }
