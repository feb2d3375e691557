"""The dead-letter ratio window: judged only when full, oldest outcomes fall out, 1.0 is off."""

from __future__ import annotations

import pytest

from processor.engine.dead_letter_ratio import DeadLetterRatio

D, OK = True, False  # dead-lettered, delivered


@pytest.mark.parametrize(
    ("max_ratio", "window", "outcomes", "ratio", "exceeded"),
    [
        (0.5, 4, [], 0.0, False),
        (0.5, 4, [D, D, D], 1.0, False),  # not judged before the window is full
        (0.5, 4, [D, D, D, D], 1.0, True),
        (0.5, 4, [D, D, OK, OK], 0.5, False),  # at the max is not past it
        (0.5, 4, [D, D, D, OK], 0.75, True),
        (0.5, 4, [D, D, D, D, OK, OK, OK], 0.25, False),  # old failures fall out
        (0.5, 4, [OK, OK, OK, OK, D, D, D], 0.75, True),
        (1.0, 4, [D, D, D, D, D], 1.0, False),  # 1.0 switches the halt off
        (0.01, 1, [D], 1.0, True),
    ],
)
def test_the_window(
    max_ratio: float, window: int, outcomes: list[bool], ratio: float, exceeded: bool
) -> None:
    counter = DeadLetterRatio(max_ratio, window)
    for dead_lettered in outcomes:
        counter.record(dead_lettered=dead_lettered, reason="422" if dead_lettered else None)
    assert counter.ratio == ratio
    assert counter.exceeded() is exceeded


def test_the_description_names_the_ratio_and_the_latest_reasons() -> None:
    counter = DeadLetterRatio(0.5, 5)
    for number in range(5):
        counter.record(dead_lettered=True, reason=f"HTTP 422 #{number}")
    text = counter.describe()
    assert text.startswith("100% of the last 5 deliveries were dead-lettered")
    assert "delivery.max_dead_letter_ratio 0.5" in text
    assert "HTTP 422 #4" in text and "HTTP 422 #2" in text and "HTTP 422 #1" not in text
