"""Full-jitter exponential backoff with Retry-After taking precedence."""

from __future__ import annotations

import random

import pytest

from processor.engine.backoff import Backoff


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (500, 300.0)],
)
def test_delay_stays_within_the_exponential_ceiling(attempt: int, ceiling: float) -> None:
    backoff = Backoff(base_seconds=1.0, cap_seconds=300.0)
    rng = random.Random(7)
    delays = [backoff.delay(attempt, rng=rng) for _ in range(200)]
    assert all(0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range


@pytest.mark.parametrize(("retry_after", "expected"), [(0.0, 0.0), (17.0, 17.0), (9000.0, 300.0)])
def test_retry_after_wins_capped(retry_after: float, expected: float) -> None:
    assert Backoff().delay(1, retry_after) == expected
