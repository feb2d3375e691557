"""An asyncio event loop whose clock jumps ahead instead of waiting.

Whenever every task is waiting on a timer, the loop moves its clock straight to the next timer,
so ``asyncio.sleep(60)`` returns at once in real time while ``loop.time()`` advances by 60.
Only for code that does no real I/O (MockTransport, in-process fakes).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.SelectSelector):
    def __init__(self, loop: SimulatedTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("simulation deadlock: every task waits and no timer is set")
        self._loop.advance(timeout)
        return super().select(0)


class SimulatedTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time, starting at ``start`` seconds."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(seconds, 0.0)


def run_simulated(main: Coroutine[Any, Any, T], start: float = 1000.0) -> T:
    """Run ``main`` to completion on a fresh simulated-time loop."""
    loop = SimulatedTimeLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
