"""Keyed locks: holders of one key run one at a time; a key nobody waits for is forgotten."""

from __future__ import annotations

import asyncio
from typing import Any

from processor.trengo.locks import KeyedLocks
from tests.unit.trengo.simulated_time import run_simulated


def test_a_key_lock_serialises_its_holders_and_is_forgotten_when_nobody_waits() -> None:
    locks: KeyedLocks[tuple[str, str]] = KeyedLocks()
    entries: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold(("1", "jane@example.com")):
            entries.append(f"{name} in")
            await asyncio.sleep(1)
            entries.append(f"{name} out")

    async def main() -> dict[Any, Any]:
        first = asyncio.create_task(hold("first"))
        cancelled = asyncio.create_task(hold("cancelled"))
        second = asyncio.create_task(hold("second"))
        await asyncio.sleep(0.5)
        cancelled.cancel()  # while it waits for the lock
        await asyncio.gather(first, cancelled, second, return_exceptions=True)
        return dict(locks._locks)

    assert run_simulated(main()) == {}
    assert entries == ["first in", "first out", "second in", "second out"]
