"""When to try a failed delivery again: full-jitter exponential backoff, Retry-After first."""

from __future__ import annotations

import random
from dataclasses import dataclass

_SHARED_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(attempt)`` = uniform(0, min(cap, base * 2**(attempt-1))), unless the server said."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: random.Random = _SHARED_RNG,
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.cap_seconds)
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** min(attempt - 1, 62))
        return rng.uniform(0, ceiling)
