"""The sandbox's fixed-window rate limiter and its bounded request recording."""

from __future__ import annotations

import pytest

from devkit.sandbox._trengo_options import ManualClock
from devkit.sandbox._trengo_traffic import (
    RATE_WINDOW_SECONDS,
    FixedWindowLimiter,
    RateDecision,
    RequestRecorder,
)

TOKEN = "token-a"
OTHER_TOKEN = "token-b"
LIMIT = 3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(clock: ManualClock) -> FixedWindowLimiter:
    return FixedWindowLimiter(lambda: clock.monotonic, lambda: clock.wall)


def test_counts_down_then_refuses_until_the_window_ends(
    clock: ManualClock, limiter: FixedWindowLimiter
) -> None:
    allowed = [limiter.hit(TOKEN, LIMIT) for _ in range(LIMIT)]
    clock.advance(20.25)
    refused = limiter.hit(TOKEN, LIMIT)

    assert allowed == [RateDecision(LIMIT, 2), RateDecision(LIMIT, 1), RateDecision(LIMIT, 0)]
    assert refused == RateDecision(LIMIT, 0, retry_after=40, reset_at=int(clock.wall) + 40)


@pytest.mark.parametrize(
    ("seconds_into_window", "retry_after"),
    [(0.0, 60), (59.0, 1), (59.9, 1)],
)
def test_retry_after_rounds_up_to_at_least_one_second(
    clock: ManualClock, limiter: FixedWindowLimiter, seconds_into_window: float, retry_after: int
) -> None:
    limiter.hit(TOKEN, 1)
    clock.advance(seconds_into_window)

    assert limiter.hit(TOKEN, 1).retry_after == retry_after


def test_a_new_window_starts_after_sixty_seconds(
    clock: ManualClock, limiter: FixedWindowLimiter
) -> None:
    for _ in range(LIMIT + 2):  # refused hits do not count
        limiter.hit(TOKEN, LIMIT)
    clock.advance(RATE_WINDOW_SECONDS)

    assert limiter.hit(TOKEN, LIMIT) == RateDecision(LIMIT, LIMIT - 1)


def test_windows_are_per_token_and_cleared(limiter: FixedWindowLimiter) -> None:
    limiter.hit(TOKEN, 1)

    assert limiter.hit(OTHER_TOKEN, 1).retry_after is None
    assert limiter.hit(TOKEN, 1).retry_after is not None
    limiter.clear()
    assert limiter.hit(TOKEN, 1).retry_after is None


def record(recorder: RequestRecorder, path: str, status: int = 200) -> None:
    recorder.record(
        method="GET",
        path=path,
        route="/r",
        query={},
        json_body=None,
        token=TOKEN,
        status=status,
        at=0.0,
    )


def test_recorder_keeps_the_newest_and_numbers_them() -> None:
    recorder = RequestRecorder(capacity=3)
    for number in range(5):
        record(recorder, f"/{number}")

    assert recorder.total == 5
    assert [(r.index, r.path) for r in recorder.since(0)] == [(2, "/2"), (3, "/3"), (4, "/4")]
    assert [r.index for r in recorder.since(4)] == [4]
    assert recorder.since(5) == []


def test_recorder_counts_by_method_route_status_and_clears() -> None:
    recorder = RequestRecorder(capacity=1)
    record(recorder, "/a", 200)
    record(recorder, "/b", 200)
    record(recorder, "/c", 429)

    assert recorder.counts == {("GET", "/r", 200): 2, ("GET", "/r", 429): 1}
    recorder.clear()
    assert (recorder.total, recorder.since(0), recorder.counts) == (0, [], {})
