"""Rate limiter: token bucket, 429 pauses, header pacing, and replicas sharing one token.

Everything runs on a simulated-time event loop: ``asyncio.sleep(60)`` returns at once while the
loop's clock moves on by 60 s, so minutes of traffic take milliseconds.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field

import pytest

from processor.metrics import RATE_LIMIT_REMAINING, THROTTLED_SECONDS
from processor.trengo.ratelimit import RateLimiter, Sleep, _SendLog
from tests.unit.trengo.simulated_time import run_simulated

UNIX_OFFSET = 1_700_000_000.0


def limiter(
    requests_per_minute: int = 120, sleep: Sleep = asyncio.sleep, **options: float
) -> RateLimiter:
    loop = asyncio.get_running_loop()
    return RateLimiter(
        requests_per_minute,
        clock=loop.time,
        sleep=sleep,
        wall_clock=lambda: UNIX_OFFSET + loop.time(),
        **options,
    )


async def send_times(rate_limiter: RateLimiter, count: int) -> list[float]:
    """When each of ``count`` back-to-back calls was let through, relative to now."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = []
    for _ in range(count):
        await rate_limiter.acquire()
        times.append(round(loop.time() - start, 6))
    return times


def headers(remaining: int, limit: int = 120) -> dict[str, str]:
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining)}


def test_without_headers_the_bucket_paces_at_the_configured_rate() -> None:
    async def main() -> list[float]:
        return await send_times(limiter(60, burst=2), 5)

    assert run_simulated(main()) == [0, 0, 1, 2, 3]


def test_acquire_reports_and_counts_the_seconds_waited() -> None:
    async def main() -> list[float]:
        rate_limiter = limiter(60, burst=1)
        return [await rate_limiter.acquire() for _ in range(3)]

    before = THROTTLED_SECONDS._value.get()
    assert run_simulated(main()) == [0, 1, 1]
    assert THROTTLED_SECONDS._value.get() - before == pytest.approx(2)


def test_concurrent_calls_are_let_through_first_come_first_served() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        rate_limiter = limiter(60, burst=1)
        order: list[tuple[str, float]] = []

        async def call(name: str, after: float) -> None:
            await asyncio.sleep(after)
            await rate_limiter.acquire()
            order.append((name, round(loop.time() - start, 6)))

        start = loop.time()
        # "c" arrives when "b" is waiting for the bucket and a token has just come back:
        # it still goes after "b".
        await asyncio.gather(call("a", 0), call("b", 0.1), call("c", 1.0))
        return order

    assert run_simulated(main()) == [("a", 0), ("b", 1), ("c", 2)]


def test_responses_without_rate_limit_headers_change_nothing() -> None:
    async def main() -> tuple[list[float], int | None]:
        rate_limiter = limiter(60, burst=1)
        rate_limiter.observe({"content-type": "application/json"}, 200, sent_at=0)
        return await send_times(rate_limiter, 3), rate_limiter.remaining

    assert run_simulated(main()) == ([0, 1, 2], None)


@pytest.mark.parametrize(
    ("response_headers", "pause"),
    [
        ({"Retry-After": "7", "X-RateLimit-Reset": str(int(UNIX_OFFSET) + 1030)}, 7),
        ({"X-RateLimit-Reset": str(int(UNIX_OFFSET) + 1012)}, 12),  # a Unix timestamp
        ({"X-RateLimit-Reset": "9"}, 9),  # too small for a timestamp: seconds
    ],
)
def test_a_429_pauses_every_call_until_trengo_allows(
    response_headers: dict[str, str], pause: float
) -> None:
    async def main() -> list[float]:
        rate_limiter = limiter()
        loop = asyncio.get_running_loop()
        assert loop.time() == 1000  # the simulated loop's start, so the reset header is t+12
        rate_limiter.observe(response_headers, 429, sent_at=loop.time())
        waiters = [asyncio.create_task(rate_limiter.acquire()) for _ in range(3)]
        return sorted(await asyncio.gather(*waiters))

    waits = run_simulated(main())
    assert waits[0] == pytest.approx(pause)
    assert waits[1] > pause and waits[2] > waits[1]  # then paced, not a burst


@pytest.mark.parametrize(
    "response_headers",
    [
        {"Retry-After": "3600"},
        {"Retry-After": "Tue, 14 Nov 2023 23:30:00 GMT"},  # an HTTP date an hour ahead
        {"X-RateLimit-Reset": str(int(UNIX_OFFSET) + 1000 + 3600)},
    ],
)
def test_a_429_pause_is_capped_however_long_trengo_asks(response_headers: dict[str, str]) -> None:
    async def main() -> float:
        rate_limiter = limiter(max_pause_seconds=120)
        rate_limiter.observe(response_headers, 429)
        return await rate_limiter.acquire()

    assert run_simulated(main()) == pytest.approx(120)


def test_a_429_with_an_absurd_retry_after_pauses_a_window() -> None:
    async def main() -> float:
        rate_limiter = limiter()
        rate_limiter.observe({"Retry-After": "1e12"}, 429)
        return await rate_limiter.acquire()

    assert run_simulated(main()) == pytest.approx(60)


def test_a_429_without_headers_pauses_a_whole_window() -> None:
    async def main() -> float:
        rate_limiter = limiter()
        rate_limiter.observe({}, 429)
        return await rate_limiter.acquire()

    assert run_simulated(main()) == pytest.approx(60)
    assert RATE_LIMIT_REMAINING._value.get() == 0


def test_a_429_without_headers_pauses_until_the_known_window_end() -> None:
    async def main() -> float:
        rate_limiter = limiter()
        loop = asyncio.get_running_loop()
        rate_limiter.observe(headers(50), 200, sent_at=loop.time())
        await asyncio.sleep(20)
        rate_limiter.observe({}, 429, sent_at=loop.time())
        return await rate_limiter.acquire()

    assert run_simulated(main()) == pytest.approx(40)


def test_remaining_is_spread_over_the_rest_of_the_window() -> None:
    async def main() -> list[float]:
        rate_limiter = limiter()
        loop = asyncio.get_running_loop()
        await rate_limiter.acquire()
        rate_limiter.observe(headers(5), 200, sent_at=loop.time())
        return await send_times(rate_limiter, 5)

    times = run_simulated(main())
    assert RATE_LIMIT_REMAINING._value.get() == 5
    # Four calls (one is kept in reserve), evenly before the window's end 60 s on; the fifth
    # waits for the next window.
    assert times[:4] == pytest.approx([12, 24, 36, 48])
    assert times[4] >= 60


def test_nothing_remaining_waits_for_the_window_end() -> None:
    async def main() -> float:
        rate_limiter = limiter()
        loop = asyncio.get_running_loop()
        rate_limiter.observe(headers(0), 200, sent_at=loop.time())
        await asyncio.sleep(15)
        return await rate_limiter.acquire()

    assert run_simulated(main()) == pytest.approx(45)


def test_a_higher_remaining_from_a_later_call_opens_a_new_window() -> None:
    async def main() -> tuple[float, int | None]:
        rate_limiter = limiter()
        loop = asyncio.get_running_loop()
        rate_limiter.observe(headers(0), 200, sent_at=loop.time())
        await asyncio.sleep(5)
        # a call sent after that answer arrived reports a fresh window
        rate_limiter.observe(headers(119), 200, sent_at=loop.time() - 0.1)
        return await rate_limiter.acquire(), rate_limiter.remaining

    waited, remaining = run_simulated(main())
    assert waited < 1
    assert remaining == 119


def test_crossed_answers_do_not_open_a_new_window() -> None:
    async def main() -> tuple[int | None, float]:
        rate_limiter = limiter()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(1)
        rate_limiter.observe(headers(1), 200, sent_at=start + 0.5)
        # sent before that answer arrived, counted earlier by the server: the same window
        rate_limiter.observe(headers(2), 200, sent_at=start + 0.4)
        return rate_limiter.remaining, await rate_limiter.acquire()

    remaining, waited = run_simulated(main())
    assert remaining == 1
    assert waited == pytest.approx(60)  # one remaining is the reserve: wait for the next window


def test_the_server_limit_header_replaces_the_configured_one() -> None:
    async def main() -> list[float]:
        rate_limiter = limiter(120)
        loop = asyncio.get_running_loop()
        rate_limiter.observe(headers(0, limit=30), 200, sent_at=loop.time())
        await asyncio.sleep(60)  # the window is over; its successor is unknown
        return await send_times(rate_limiter, 3)

    times = run_simulated(main())
    assert times[1] - times[0] == pytest.approx(2, abs=0.3)  # 30 per minute, not 120


# A fixed-window server shared by several replicas, each with its own limiter.


@dataclass
class FixedWindowServer:
    """Counts calls per token in 60 s windows, like Trengo (``laravel``: a window starts at
    the first call after the previous one ended; ``aligned``: windows start every 60 s)."""

    limit: int
    aligned: bool
    window_started_at: float = -math.inf
    hits: int = 0
    accepted_at: list[float] = field(default_factory=list)
    refused: int = 0

    def answer(self, now: float) -> tuple[int, dict[str, str]]:
        self._roll(now)
        ends_at = self.window_started_at + 60
        if self.hits >= self.limit:
            self.refused += 1
            retry_after = str(max(1, math.ceil(ends_at - now)))
            reset = str(int(UNIX_OFFSET + ends_at))
            return 429, {
                **headers(0, self.limit),
                "Retry-After": retry_after,
                "X-RateLimit-Reset": reset,
            }
        self.hits += 1
        self.accepted_at.append(now)
        return 200, headers(self.limit - self.hits, self.limit)

    def _roll(self, now: float) -> None:
        if now < self.window_started_at + 60:
            return
        self.window_started_at = math.floor(now / 60) * 60 + 17 if self.aligned else now
        if self.window_started_at > now:
            self.window_started_at -= 60
        self.hits = 0


async def backlogged_replica(
    server: FixedWindowServer,
    rng: random.Random,
    until: float,
    in_flight: int,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """One replica with more work than budget: ``in_flight`` workers call as fast as allowed."""
    loop = asyncio.get_running_loop()
    rate_limiter = limiter(server.limit, sleep)

    async def worker() -> None:
        while loop.time() < until:
            await rate_limiter.acquire()
            sent_at = loop.time()
            await asyncio.sleep(rng.uniform(0.02, 0.2))  # to Trengo
            status, response_headers = server.answer(loop.time())
            await asyncio.sleep(rng.uniform(0.02, 0.2))  # and back
            rate_limiter.observe(response_headers, status, sent_at=sent_at)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("aligned", [False, True], ids=["laravel-window", "aligned-window"])
def test_replicas_sharing_a_token_use_the_budget_without_429s(replicas: int, aligned: bool) -> None:
    minutes = 10

    async def main() -> FixedWindowServer:
        loop = asyncio.get_running_loop()
        server = FixedWindowServer(limit=120, aligned=aligned)
        until = loop.time() + minutes * 60
        rng = random.Random(replicas)
        await asyncio.gather(
            *(backlogged_replica(server, rng, until, in_flight=16) for _ in range(replicas))
        )
        server.accepted_at = [moment for moment in server.accepted_at if moment < until]
        return server

    server = run_simulated(main())
    accepted = len(server.accepted_at)
    # A Laravel window opens with the first call, so the budget is 120 per started minute; an
    # aligned window may open mid-run, so its first partial minute may be lost to the limiter.
    budget = 120 * minutes
    assert accepted >= 0.95 * budget
    assert accepted <= budget + (120 if aligned else 0)
    assert server.refused <= 0.005 * (accepted + server.refused)


def test_late_wake_ups_of_a_busy_event_loop_are_made_up() -> None:
    """A loaded event loop wakes every sleeper a little late; at 100 calls/s a millisecond per
    call would cost a tenth of the budget if each pause counted from the previous send."""
    minutes = 3

    async def late_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds + 0.001)

    async def main() -> FixedWindowServer:
        loop = asyncio.get_running_loop()
        server = FixedWindowServer(limit=6000, aligned=False)
        until = loop.time() + minutes * 60
        await backlogged_replica(server, random.Random(5), until, 64, late_sleep)
        server.accepted_at = [moment for moment in server.accepted_at if moment < until]
        return server

    server = run_simulated(main())
    assert len(server.accepted_at) >= 0.99 * 6000 * minutes
    assert server.refused <= 0.005 * (len(server.accepted_at) + server.refused)


def test_the_send_log_counts_only_calls_not_forgotten_before_and_after_dropping_them() -> None:
    log = _SendLog()
    for sent_at in range(10):
        log.add(float(sent_at))
    log.forget_before(3.0)  # 3 of 10: kept in the list, but no longer counted
    assert log.count_after(-1.0) == 7
    assert log.count_after(4.0, 6.0) == 2
    assert log.count_after(-1.0, 2.0) == 0
    log.forget_before(8.0)  # 8 of 10: dropped from the list in bulk
    assert log.count_after(-1.0) == 2
    log.add(10.0)
    assert log.count_after(8.5) == 2
