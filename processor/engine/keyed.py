"""Ordered per key, concurrent across keys.

Items of one key are handled strictly one after another, in submit order; items of different
keys run concurrently on at most ``max_in_flight`` workers. A handler that wants an item tried
again returns a delay: the item stays at the head of its key (blocking only that key) and the
worker is free for other keys meanwhile.

Backpressure contract: ``submit`` never blocks and never refuses; the caller bounds how much it
submits (the poll loop pauses partitions above a high-water mark of buffered events).

A key is waiting for a worker at most once at any time (``_wake``), so two workers can never
handle one key's item together, whatever discards and retries happened before. After
``stop_starting`` (shutdown) items already being handled finish, and nothing else starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")

logger = logging.getLogger(__name__)

# Returns None when the item is finished, or the seconds to wait before handling it again.
Handler = Callable[[Item], Awaitable[float | None]]
# Takes the next item off a key's queue; may merge several queued items into one.
Taker = Callable[[deque[Item]], Item]


def _take_head(queue: deque[Item]) -> Item:
    return queue.popleft()


class KeyedScheduler(Generic[Item]):
    """Per-key FIFO queues served by a fixed pool of worker tasks."""

    def __init__(
        self,
        handle: Handler[Item],
        max_in_flight: int,
        take: Taker[Item] = _take_head,
        bug_retry_seconds: float = 5.0,
    ) -> None:
        self._handle = handle
        self._take = take
        self._bug_retry_seconds = bug_retry_seconds
        self._max_in_flight = max_in_flight
        self._queued: dict[str, deque[Item]] = {}
        self._current: dict[str, Item] = {}
        self._active: set[str] = set()
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()  # keys in _ready
        self._starting = True
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the worker tasks on the running loop."""
        self._workers = [
            asyncio.create_task(self._work(), name=f"delivery-worker-{number}")
            for number in range(self._max_in_flight)
        ]

    async def stop(self) -> None:
        """Cancel workers and pending retries; queued items are abandoned (not done)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._queued.clear()
        self._current.clear()

    def stop_starting(self) -> None:
        """Start no more items: those being handled finish, queued and retrying ones stay."""
        self._starting = False

    def submit(self, key: str, item: Item) -> None:
        """Queue an item behind the other items of its key."""
        queue = self._queued.setdefault(key, deque())
        queue.append(item)
        if len(queue) == 1 and key not in self._current:
            self._wake(key)

    def discard(self, should_drop: Callable[[Item], bool]) -> int:
        """Remove queued items and items waiting to be retried (their timers are cancelled,
        they are never handled again); items being handled stay. Returns how many dropped."""
        dropped = 0
        for key, item in list(self._current.items()):
            if key not in self._active and should_drop(item):
                timer = self._timers.pop(key, None)
                if timer is not None:
                    timer.cancel()
                del self._current[key]
                dropped += 1
                if key not in self._waiting:
                    self._release(key)
        for key in list(self._queued):
            queue = self._queued[key]
            kept = deque(item for item in queue if not should_drop(item))
            dropped += len(queue) - len(kept)
            if kept:
                self._queued[key] = kept
            elif key not in self._current:
                del self._queued[key]
            else:
                self._queued[key] = kept
        return dropped

    async def wait_gone(
        self, matters: Callable[[Item], bool], timeout_seconds: float, poll_seconds: float = 0.02
    ) -> bool:
        """Wait until no item that ``matters`` is queued, waiting for a retry or being
        handled; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while self._holds(matters):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll_seconds)
        return True

    def _holds(self, matters: Callable[[Item], bool]) -> bool:
        return any(matters(item) for item in self._current.values()) or any(
            matters(item) for queue in self._queued.values() for item in queue
        )

    @property
    def active_count(self) -> int:
        """Items being handled right now."""
        return len(self._active)

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            self._waiting.discard(key)
            self._timers.pop(key, None)
            if not self._starting:
                continue
            item = self._current.get(key)
            if item is None:
                queue = self._queued.get(key)
                if not queue:
                    self._queued.pop(key, None)
                    continue
                item = self._take(queue)
                self._current[key] = item
            self._active.add(key)
            try:
                delay = await self._handle(item)
            except Exception:
                # A handler bug must not kill the worker or lose the item: try it again later.
                logger.exception("handler failed; retrying in %s s", self._bug_retry_seconds)
                delay = self._bug_retry_seconds
            finally:
                self._active.discard(key)
            if delay is None:
                self._finish(key)
            else:
                loop = asyncio.get_running_loop()
                self._timers[key] = loop.call_later(delay, self._wake, key)

    def _wake(self, key: str) -> None:
        if key not in self._waiting:
            self._waiting.add(key)
            self._ready.put_nowait(key)

    def _finish(self, key: str) -> None:
        del self._current[key]
        self._release(key)

    def _release(self, key: str) -> None:
        """The key has no current item: wake it for its next queued one, or forget it."""
        if self._queued.get(key):
            self._wake(key)
        else:
            self._queued.pop(key, None)
