"""One rate limiter per Trengo API token, driven by Trengo's own rate-limit headers.

Trengo allows about 120 calls per minute per token and reports, on every response,
``x-ratelimit-limit`` and ``x-ratelimit-remaining`` (calls left in the current window); a 429
carries ``Retry-After`` (and ``X-RateLimit-Reset``). The server counts in fixed windows of about
60 s. Several replicas may share one token and see each other only through ``remaining``.

The limiter combines three brakes; a call waits for the slowest:

1. A token bucket at the configured ``requests_per_minute`` (the operator's ceiling).
2. A pause of every call after a 429, until Trengo's ``Retry-After`` (or reset) has passed,
   at most ``max_pause_seconds`` (``delivery.retry_cap_seconds``).
3. Pacing by the headers. The limiter tracks the server's current window: an upper bound of
   when it ends (the server counted a call in it, so it ends at most ``window_seconds`` after
   that call's answer arrived), the lowest ``remaining`` reported in it, and this replica's
   *share* of the window's consumption (own calls / calls the server counted, steadied by
   earlier windows). It spreads its share of what remains, minus one call kept in reserve,
   evenly over the time left, and waits for the next window when that is less than one call.
   Replicas sharing a token thus split the budget without talking to each other and run it
   down to zero at the window's end instead of into a 429. After a window ends, calls go out
   at the replica's usual share of a full window until the first answer reports the new one.
   Gaps count from when the previous call was due, not from when a busy event loop let it
   through, so late wake-ups are made up instead of lost (at 100 calls/s a millisecond late per
   call would waste a tenth of the budget).

   A new window shows in a response that reports more ``remaining`` than an earlier answer
   that had arrived before its call was sent (or much more), or in any answer to a call sent
   after the old window's end bound.

   Shares get a bonus, concave and fading as the window runs out, so that busy replicas drift
   towards an equal split rather than keeping whatever split they started with, while the
   shares spent at a window's end still add up to one.

In a simulation against a fixed 60 s window shared by one to eight backlogged replicas
(``tests/unit/trengo/test_ratelimit.py`` runs one and three), this uses 98-99 % of the budget
with no or almost no 429s.

Clock and sleep are injectable so tests run in simulated time.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from processor.metrics import RATE_LIMIT_REMAINING, THROTTLED_SECONDS
from processor.trengo.errors import retry_after_seconds

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Longest nap between re-checks while waiting: responses arriving meanwhile may shorten the wait.
_RECHECK_SECONDS = 0.5
# Weight, in calls, of the share carried over from earlier windows against this window's count.
_PRIOR_WEIGHT = 8.0
# Size of the share bonus that moves busy replicas towards an equal split (see _with_bonus).
_FAIRNESS_BONUS = 0.2
# Smallest share a replica assumes, so a replica that had little traffic can still grow.
_MIN_SHARE = 0.05
# Calls of a window left unspent to absorb races between replicas at the window's end.
_RESERVE_CALLS = 1
# A call let through later than the pacing allowed (a busy event loop wakes sleepers late) moves
# the pacing on from when it was due, so its successors make up for the delay; a call later
# than this (after an idle spell or a pause) starts the pacing afresh, without a burst.
_CATCH_UP_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class _Observation:
    """One response's ``remaining``, with when its call was sent and its answer received."""

    remaining: int
    sent_at: float
    received_at: float


@dataclass(slots=True)
class _Window:
    """What this replica knows of the server's current window."""

    ends_by: float  # upper bound of the window's end on our clock
    first: _Observation
    lowest: _Observation  # the latest server state seen: the lowest remaining
    share_prior: float  # this replica's share in earlier windows
    backlogged: bool = False  # calls had to wait: the measured share is all we could get


class _TokenBucket:
    """The configured ceiling: ``rate`` calls per second, bursts of ``capacity``."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._updated_at = now

    def delay(self, now: float) -> float:
        """Seconds until one token is available."""
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self._rate)

    def take(self, now: float) -> None:
        """Spend one token."""
        self._refill(now)
        self._tokens -= 1

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated_at)
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        self._updated_at = now


class _SendLog:
    """When this replica sent its recent calls (ascending), to count them between two moments.

    Forgotten calls leave the list in bulk, once they are half of it: dropping the head of a
    list moves all the rest, which at thousands of calls a second would cost more than the call.
    """

    def __init__(self) -> None:
        self._times: list[float] = []
        self._forgotten = 0  # the first this many entries are forgotten

    def add(self, sent_at: float) -> None:
        self._times.append(sent_at)

    def count_after(self, since: float, until: float = float("inf")) -> int:
        """Calls sent in ``(since, until]`` and not forgotten."""
        first = max(bisect.bisect_right(self._times, since), self._forgotten)
        return max(0, bisect.bisect_right(self._times, until) - first)

    def forget_before(self, moment: float) -> None:
        self._forgotten = max(self._forgotten, bisect.bisect_left(self._times, moment))
        if self._forgotten > len(self._times) // 2:
            del self._times[: self._forgotten]
            self._forgotten = 0


class RateLimiter:
    """Paces the calls of one API token; ``acquire`` before each call, ``observe`` after."""

    def __init__(
        self,
        requests_per_minute: int,
        *,
        burst: int | None = None,
        window_seconds: float = 60.0,
        max_pause_seconds: float = 300.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._window_seconds = window_seconds
        self._max_pause_seconds = max_pause_seconds
        self._limit = requests_per_minute
        self._reported_limit: int | None = None
        capacity = burst if burst is not None else max(1, requests_per_minute // 60)
        self._bucket = _TokenBucket(requests_per_minute / 60.0, capacity, clock())
        self._sends = _SendLog()
        self._last_due_at = float("-inf")  # when the pacing allowed the latest call
        self._paused_until = float("-inf")
        self._window: _Window | None = None
        self._share_prior = 1.0
        self._turn = asyncio.Lock()
        self._queued = 0  # calls holding or waiting for the turn

    @property
    def remaining(self) -> int | None:
        """The lowest ``remaining`` Trengo reported in the current window, if known."""
        return self._window.lowest.remaining if self._window is not None else None

    @property
    def reported_limit(self) -> int | None:
        """The latest ``x-ratelimit-limit`` Trengo sent; None until it sends one."""
        return self._reported_limit

    @property
    def paused_until(self) -> float:
        """Until when (on the limiter's clock) a 429 paused every call."""
        return self._paused_until

    async def acquire(self) -> float:
        """Wait until one more call may be sent, charge it, and return the seconds waited."""
        if not self._queued:  # nobody ahead: charge at once when nothing holds the call back
            now = self._clock()
            if self._delay(now) <= 0:
                self._charge(now)
                return 0.0
        started = self._clock()
        self._queued += 1
        try:
            async with self._turn:  # one waiter at a time, first come first served
                while (delay := self._delay(self._clock())) > 0:
                    if self._window is not None:
                        self._window.backlogged = True
                    await self._sleep(min(delay, _RECHECK_SECONDS))
                self._charge(self._clock())
        finally:
            self._queued -= 1
        waited = self._clock() - started
        if waited > 0:
            THROTTLED_SECONDS.inc(waited)
        return waited

    def observe(
        self, headers: Mapping[str, str], status: int, *, sent_at: float | None = None
    ) -> None:
        """Learn from one response's headers; ``sent_at`` is when its call was sent."""
        now = self._clock()
        lookup = headers if isinstance(headers, httpx.Headers) else httpx.Headers(dict(headers))
        limit = _integer(lookup.get("x-ratelimit-limit"))
        if limit is not None and limit > 0:
            self._limit = self._reported_limit = limit
        if status == 429:
            self._pause(lookup, now, now if sent_at is None else sent_at)
            return
        remaining = _integer(lookup.get("x-ratelimit-remaining"))
        if remaining is None:
            return
        RATE_LIMIT_REMAINING.set(remaining)
        self._record(_Observation(remaining, now if sent_at is None else sent_at, now))

    def _delay(self, now: float) -> float:
        return max(self._paused_until - now, self._bucket.delay(now), self._pacing_delay(now))

    def _charge(self, now: float) -> None:
        due_at = now + min(0.0, self._pacing_delay(now))
        self._last_due_at = due_at if now - due_at <= _CATCH_UP_SECONDS else now
        self._bucket.take(now)
        self._sends.add(now)
        self._sends.forget_before(now - 2 * self._window_seconds)

    def _pacing_delay(self, now: float) -> float:
        window = self._window
        if window is None:  # Trengo never sent rate-limit headers: the bucket alone decides
            return 0.0
        if now >= window.ends_by:
            # A new window whose state is unknown: our usual share of a full one, evenly.
            calls = max(1.0, _with_bonus(self._share_prior, 1.0) * self._limit)
            return self._last_due_at + self._window_seconds / calls - now
        budget = self._budget(window)
        if budget < 1:
            return window.ends_by - now
        # Spread `budget` calls evenly over the time left: the gap since the last call was due
        # must be at least (ends_by - now) / budget.
        ready_at = (budget * self._last_due_at + window.ends_by) / (budget + 1)
        return ready_at - now

    def _budget(self, window: _Window) -> float:
        """Calls this replica may still send in the window: its share of what remains."""
        usable = window.lowest.remaining - _RESERVE_CALLS
        sent_since = self._sends.count_after(window.lowest.sent_at)
        fresh = min(1.0, window.lowest.remaining / self._limit)
        return _with_bonus(self._measured_share(window), fresh) * usable - sent_since

    def _measured_share(self, window: _Window) -> float:
        """Own calls / calls the server counted in this window, steadied by earlier windows."""
        own = self._sends.count_after(window.first.sent_at, window.lowest.sent_at)
        counted = window.first.remaining - window.lowest.remaining
        measured = (own + _PRIOR_WEIGHT * window.share_prior) / (counted + _PRIOR_WEIGHT)
        return min(1.0, max(_MIN_SHARE, measured))

    def _record(self, observation: _Observation) -> None:
        window = self._window
        if window is None or self._starts_window(window, observation):
            self._open_window(observation)
            return
        if observation.remaining < window.lowest.remaining:
            window.lowest = observation
        if window.backlogged:
            # What a busy replica got is its share; an idle one's small share says nothing.
            self._share_prior = self._measured_share(window)

    def _starts_window(self, window: _Window, observation: _Observation) -> bool:
        if observation.sent_at >= window.ends_by:
            return True
        if observation.remaining <= window.lowest.remaining:
            return False
        # More remaining than before: a new window, unless the answers merely crossed.
        crossed_slack = max(2, self._limit // 20)
        return (
            observation.sent_at >= window.lowest.received_at
            or observation.remaining > window.lowest.remaining + crossed_slack
        )

    def _open_window(self, observation: _Observation) -> None:
        # The server counted this call inside the window, so it ends within a window's length.
        ends_by = observation.received_at + self._window_seconds
        self._window = _Window(ends_by, observation, observation, self._share_prior)

    def _pause(self, headers: Mapping[str, str], now: float, sent_at: float) -> None:
        RATE_LIMIT_REMAINING.set(0)
        delay = retry_after_seconds(headers, self._wall_clock())
        if delay is None:
            known_end = self._window.ends_by - now if self._window is not None else 0.0
            delay = known_end if known_end > 0 else self._window_seconds
        # However long Trengo asks for, the pause ends by the retry cap (a header may be wrong).
        delay = min(delay, self._max_pause_seconds)
        self._paused_until = max(self._paused_until, now + delay)
        # Trengo's word on when this window ends beats our estimate; nothing is left in it.
        refused = _Observation(0, sent_at, now)
        if self._window is None:
            self._window = _Window(self._paused_until, refused, refused, self._share_prior)
        self._window.ends_by = self._paused_until
        self._window.lowest = refused


def _with_bonus(share: float, fresh: float) -> float:
    """The share to spend by: a bonus, concave so that small shares grow relatively more,
    lets busy replicas drift to an equal split; it fades as the window (``fresh``: the part
    of the limit still remaining) runs out, so that shares add up to one at the end."""
    return min(1.0, share + _FAIRNESS_BONUS * math.sqrt(share) * fresh)


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text.strip()))
    except ValueError:
        return None
