"""What the Trengo sandbox does with traffic: the per-token rate limit and the request recording."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

from devkit.sandbox._trengo_model import JSONObject, JSONValue

RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The rate limiter's answer for one request.

    ``retry_after`` (seconds) and ``reset_at`` (Unix seconds) are set only when it is refused;
    ``limit`` is None for a forced refusal (429 storm) while no rate limit is set.
    """

    limit: int | None
    remaining: int
    retry_after: int | None = None
    reset_at: int | None = None


@dataclass(slots=True)
class _Window:
    started_at: float
    hits: int


class FixedWindowLimiter:
    """Laravel's throttle: per token, a 60 s window starting at its first request.

    A refused request is not counted, as in Laravel's ``ThrottleRequests``.
    """

    def __init__(self, monotonic: Callable[[], float], wall: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._windows: dict[str, _Window] = {}

    def hit(self, token: str, limit: int) -> RateDecision:
        """Count one request of ``token`` against ``limit`` per window, or refuse it."""
        now = self._monotonic()
        window = self._windows.get(token)
        if window is None or now - window.started_at >= RATE_WINDOW_SECONDS:
            window = self._windows[token] = _Window(started_at=now, hits=0)
        if window.hits >= limit:
            retry_after = max(1, math.ceil(window.started_at + RATE_WINDOW_SECONDS - now))
            return RateDecision(limit, 0, retry_after, int(self._wall()) + retry_after)
        window.hits += 1
        return RateDecision(limit, limit - window.hits)

    def clear(self) -> None:
        """Forget every window."""
        self._windows.clear()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API request as the sandbox saw and answered it.

    ``route`` is the route pattern (``/api/v2/contacts/{id}``), ``at`` the sandbox's Unix time,
    ``json_body`` the parsed body (None when absent or not JSON).
    """

    index: int
    method: str
    path: str
    route: str
    query: dict[str, str]
    json_body: JSONValue
    token: str | None
    status: int
    at: float

    def to_json(self) -> JSONObject:
        """The record as a JSON object (``GET /__admin/requests``)."""
        return {
            "index": self.index,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "query": dict(self.query),
            "json": self.json_body,
            "token": self.token,
            "status": self.status,
            "at": self.at,
        }


class RequestRecorder:
    """The last ``capacity`` API requests, numbered from 0, and counts by method, route, status."""

    def __init__(self, capacity: int) -> None:
        self._recent: deque[RecordedRequest] = deque(maxlen=capacity)
        self._next_index = 0
        self.counts: Counter[tuple[str, str, int]] = Counter()

    @property
    def total(self) -> int:
        """How many requests were recorded since start or the last reset (also the next index)."""
        return self._next_index

    def record(
        self,
        *,
        method: str,
        path: str,
        route: str,
        query: dict[str, str],
        json_body: JSONValue,
        token: str | None,
        status: int,
        at: float,
    ) -> None:
        """Append one answered request."""
        entry = RecordedRequest(
            self._next_index, method, path, route, query, json_body, token, status, at
        )
        self._recent.append(entry)
        self._next_index += 1
        self.counts[(method, route, status)] += 1

    def since(self, index: int) -> list[RecordedRequest]:
        """The kept requests numbered ``index`` or later, oldest first."""
        first_kept = self._recent[0].index if self._recent else self._next_index
        return list(islice(self._recent, max(0, index - first_kept), None))

    def clear(self) -> None:
        """Forget every request and count; numbering starts again at 0."""
        self._recent.clear()
        self._next_index = 0
        self.counts.clear()
