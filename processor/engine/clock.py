"""The engine's clock, injectable so tests run in simulated time instead of sleeping or
patching ``time`` (as Sentry Arroyo's ``arroyo/utils/clock.py``).

``monotonic`` measures spans (retry deadlines, time halted) and never jumps; ``time`` is Unix
time, for timestamps that leave the process (dead-letter headers, delivery latency).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where the engine reads the time."""

    def monotonic(self) -> float: ...
    def time(self) -> float: ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK: Clock = SystemClock()
