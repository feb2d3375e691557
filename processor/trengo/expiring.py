"""``Expiring``: a bounded map whose entries expire, for what the executor remembers of Trengo.

The contact-id cache, the names and field values sent, the profile, label-attachment and
resumption memories all need the same thing: remember a
little (bounded, so memory stays flat whatever the traffic), and forget it after a while (so a
change made in Trengo's UI is seen again). A size or TTL of zero remembers nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

# For work a retry must be able to finish (a ticket's follow-ups, a profile created but not yet
# keyed): on whatever the cache settings, and kept longer than a retry lasts
# (delivery.retry_max_seconds, 3 h by default).
RESUMABLE_SIZE = 10_000
RESUMABLE_TTL_SECONDS = 24 * 3600.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """A bounded LRU map whose entries expire ``ttl_seconds`` after they were last put."""

    def __init__(
        self, size: int, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: TTLCache[K, V] | None = None
        if size > 0 and ttl_seconds > 0:
            self._entries = TTLCache(maxsize=size, ttl=ttl_seconds, timer=clock)

    def get(self, key: K) -> V | None:
        """The value remembered for ``key``, or None."""
        return None if self._entries is None else self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``key`` (its lifetime starts again)."""
        if self._entries is not None:
            self._entries[key] = value

    def pop(self, key: K) -> None:
        """Forget ``key``."""
        if self._entries is not None:
            self._entries.pop(key, None)

    def forget_values(self, matches: Callable[[V], bool]) -> None:
        """Forget every entry whose value ``matches``."""
        if self._entries is None:
            return
        for key in [key for key, value in self._entries.items() if matches(value)]:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)
