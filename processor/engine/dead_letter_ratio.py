"""The share of dead letters among the latest deliveries: a bad deploy, told apart from bad data.

A wrong ``channelId``, template or field id makes Trengo refuse every event (422 after 422);
dead-lettering the whole stream is then worse than stopping. ``DeadLetterRatio`` keeps the
outcomes of the last ``window`` deliveries (deliver stage only: a pipeline rejection is the
data's fault, not the deploy's) and says when more than ``max_ratio`` of them were dead letters.
It judges only a full window, so a few early failures do not halt a fresh pod.
"""

from __future__ import annotations

from collections import deque

from processor import metrics

# How many recent dead-letter reasons the halt message names.
REASONS_SHOWN = 3


class DeadLetterRatio:
    """Outcomes of the last ``window`` deliveries; ``exceeded`` once the ratio passes the max."""

    def __init__(self, max_ratio: float, window: int) -> None:
        self._max_ratio = max_ratio
        self._dead_lettered: deque[bool] = deque(maxlen=window)
        self._dead_count = 0
        self._reasons: deque[str] = deque(maxlen=REASONS_SHOWN)

    @property
    def ratio(self) -> float:
        """Dead letters over outcomes in the window (0.0 before the first outcome)."""
        seen = len(self._dead_lettered)
        return self._dead_count / seen if seen else 0.0

    def record(self, *, dead_lettered: bool, reason: str | None = None) -> None:
        """Add one delivery outcome, dropping the oldest once the window is full."""
        window = self._dead_lettered
        if len(window) == window.maxlen and window[0]:
            self._dead_count -= 1
        window.append(dead_lettered)
        if dead_lettered:
            self._dead_count += 1
            if reason is not None:
                self._reasons.append(reason)
        metrics.DEAD_LETTER_RATIO.set(self.ratio)

    def exceeded(self) -> bool:
        """True once the window is full and more than ``max_ratio`` of it was dead-lettered."""
        full = len(self._dead_lettered) == self._dead_lettered.maxlen
        return full and self.ratio > self._max_ratio

    def describe(self) -> str:
        """The halt reason: the ratio, the limit and the last dead-letter reasons."""
        reasons = "; ".join(self._reasons) or "none recorded"
        return (
            f"{self.ratio:.0%} of the last {len(self._dead_lettered)} deliveries were "
            f"dead-lettered (delivery.max_dead_letter_ratio {self._max_ratio:g}); "
            f"last reasons: {reasons}"
        )
