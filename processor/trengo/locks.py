"""``KeyedLocks``: one asyncio lock per key, so work on one contact (or profile) runs one at a
time while other keys run concurrently. A key's lock lives only while someone holds or waits
for it, so the table stays as small as the work in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """One lock per key, alive only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, int]] = {}

    def hold(self, key: K) -> HeldLock[K]:
        """``async with locks.hold(key):`` runs the block holding the key's lock."""
        return HeldLock(self._locks, key)

    def __len__(self) -> int:
        return len(self._locks)


class HeldLock(Generic[K]):
    """One ``hold`` of a keyed lock (a class, not a generator: it runs for every event)."""

    __slots__ = ("_key", "_lock", "_locks")

    def __init__(self, locks: dict[K, tuple[asyncio.Lock, int]], key: K) -> None:
        self._locks = locks
        self._key = key
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        lock, users = self._locks.get(self._key) or (asyncio.Lock(), 0)
        self._locks[self._key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user
            self._leave()
            raise
        self._lock = lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._lock is not None  # entered
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        lock, users = self._locks[self._key]
        if users == 1:
            del self._locks[self._key]
        else:
            self._locks[self._key] = (lock, users - 1)
