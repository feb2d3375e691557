"""Per-key order, cross-key concurrency, retries that block only their key."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from processor.engine.keyed import KeyedScheduler


class Recorder:
    """A handler that records the order of handling and can fail items a few times."""

    def __init__(self, failures: dict[str, int] | None = None, hold: float = 0.0) -> None:
        self.handled: list[str] = []
        self.failures = dict(failures or {})
        self.hold = hold
        self.concurrent = 0
        self.most_concurrent = 0

    async def handle(self, item: str) -> float | None:
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        await asyncio.sleep(self.hold)
        self.concurrent -= 1
        if self.failures.get(item, 0) > 0:
            self.failures[item] -= 1
            return 0.05
        self.handled.append(item)
        return None


async def run_until(recorder: Recorder, count: int, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while len(recorder.handled) < count:
            await asyncio.sleep(0.005)


async def test_items_of_one_key_run_in_order_even_when_one_retries() -> None:
    recorder = Recorder(failures={"a1": 2})
    scheduler = KeyedScheduler(recorder.handle, max_in_flight=4)
    scheduler.start()
    for item in ["a1", "a2", "a3"]:
        scheduler.submit("a", item)
    await run_until(recorder, 3)
    await scheduler.stop()
    assert recorder.handled == ["a1", "a2", "a3"]


async def test_a_retrying_key_does_not_block_other_keys() -> None:
    recorder = Recorder(failures={"a1": 3})
    scheduler = KeyedScheduler(recorder.handle, max_in_flight=1)
    scheduler.start()
    scheduler.submit("a", "a1")
    scheduler.submit("b", "b1")
    scheduler.submit("b", "b2")
    await run_until(recorder, 3)
    await scheduler.stop()
    assert recorder.handled.index("b2") < recorder.handled.index("a1")


@pytest.mark.parametrize("max_in_flight", [1, 3, 8])
async def test_concurrency_is_bounded_by_max_in_flight(max_in_flight: int) -> None:
    recorder = Recorder(hold=0.01)
    scheduler = KeyedScheduler(recorder.handle, max_in_flight=max_in_flight)
    scheduler.start()
    for key in range(20):
        scheduler.submit(f"k{key}", f"k{key}")
    await run_until(recorder, 20)
    await scheduler.stop()
    assert recorder.most_concurrent == min(max_in_flight, 20)


async def test_discard_drops_queued_items_but_not_running_ones() -> None:
    gate = asyncio.Event()
    handled: list[str] = []

    async def handle(item: str) -> float | None:
        await gate.wait()
        handled.append(item)
        return None

    scheduler: KeyedScheduler[str] = KeyedScheduler(handle, max_in_flight=2)
    scheduler.start()
    for item in ["p0-a", "p1-b", "p1-c"]:
        scheduler.submit("a", item)
    await asyncio.sleep(0.01)
    assert scheduler.discard(lambda item: item.startswith("p1")) == 2
    gate.set()
    async with asyncio.timeout(2):
        while not handled:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    await scheduler.stop()
    assert handled == ["p0-a"]


async def test_wait_gone_waits_for_the_items_that_matter_and_times_out() -> None:
    release = asyncio.Event()

    async def handle(item: str) -> float | None:
        await release.wait()
        return None

    scheduler: KeyedScheduler[str] = KeyedScheduler(handle, max_in_flight=1)
    scheduler.start()
    scheduler.submit("a", "slow")
    await asyncio.sleep(0.01)
    assert not await scheduler.wait_gone(lambda _item: True, timeout_seconds=0.05)
    assert await scheduler.wait_gone(lambda item: item != "slow", timeout_seconds=0.05)
    release.set()
    assert await scheduler.wait_gone(lambda _item: True, timeout_seconds=1.0)
    await scheduler.stop()


async def test_custom_take_can_merge_queued_items() -> None:
    recorder = Recorder()

    def take_all(queue: deque[str]) -> str:
        merged = "+".join(queue)
        queue.clear()
        return merged

    block = asyncio.Event()

    async def handle(item: str) -> float | None:
        if item == "first":
            await block.wait()
        return await recorder.handle(item)

    scheduler = KeyedScheduler(handle, max_in_flight=1, take=take_all)
    scheduler.start()
    scheduler.submit("a", "first")
    await asyncio.sleep(0.01)
    for item in ["x", "y", "z"]:
        scheduler.submit("a", item)
    block.set()
    await run_until(recorder, 2)
    await scheduler.stop()
    assert recorder.handled == ["first", "x+y+z"]


async def test_a_crashing_handler_does_not_lose_the_item() -> None:
    calls: list[str] = []

    async def handle(item: str) -> float | None:
        calls.append(item)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return None

    scheduler: KeyedScheduler[str] = KeyedScheduler(handle, max_in_flight=1, bug_retry_seconds=0)
    scheduler.start()
    scheduler.submit("a", "only")
    async with asyncio.timeout(10):
        while len(calls) < 2:
            await asyncio.sleep(0.01)
    await scheduler.stop()
    assert calls == ["only", "only"]


async def test_a_key_waits_for_a_worker_once_so_two_workers_never_share_its_item() -> None:
    release = asyncio.Event()
    handled: list[str] = []

    async def handle(item: str) -> float | None:
        await release.wait()
        await asyncio.sleep(0.01)  # still handling when the other worker looks for work
        handled.append(item)
        return None

    scheduler: KeyedScheduler[str] = KeyedScheduler(handle, max_in_flight=2)
    scheduler.start()
    scheduler.submit("busy-1", "busy-1")
    scheduler.submit("busy-2", "busy-2")
    await asyncio.sleep(0.01)  # both workers are busy: key "a" waits for one
    scheduler.submit("a", "revoked")
    scheduler.discard(lambda item: item == "revoked")
    scheduler.submit("a", "reassigned")
    release.set()
    async with asyncio.timeout(2):
        while len(handled) < 3:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    await scheduler.stop()
    assert sorted(handled) == ["busy-1", "busy-2", "reassigned"]


async def test_after_stop_starting_running_items_finish_and_nothing_else_starts() -> None:
    release = asyncio.Event()
    handled: list[str] = []

    async def handle(item: str) -> float | None:
        await release.wait()
        handled.append(item)
        return 0.0 if item == "b1" else None

    scheduler: KeyedScheduler[str] = KeyedScheduler(handle, max_in_flight=2)
    scheduler.start()
    for key, item in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1")]:
        scheduler.submit(key, item)
    await asyncio.sleep(0.01)
    scheduler.stop_starting()
    release.set()
    assert await scheduler.wait_gone(lambda item: item == "a1", timeout_seconds=1.0)
    await asyncio.sleep(0.02)
    await scheduler.stop()
    assert handled == ["a1", "b1"]  # b1's retry and the queued a2, c1 never started


async def test_discarding_an_item_waiting_for_its_retry_cancels_the_retry() -> None:
    handled: list[str] = []

    async def handle(item: str) -> float | None:
        handled.append(item)
        return 0.05 if item == "p1-retrying" else None

    scheduler: KeyedScheduler[str] = KeyedScheduler(handle, max_in_flight=2)
    scheduler.start()
    scheduler.submit("a", "p1-retrying")
    scheduler.submit("a", "p0-next")
    await asyncio.sleep(0.01)
    assert handled == ["p1-retrying"]

    assert scheduler.discard(lambda item: item.startswith("p1")) == 1

    assert await scheduler.wait_gone(lambda _item: True, timeout_seconds=1.0)
    await asyncio.sleep(0.1)  # past the cancelled retry's time
    await scheduler.stop()
    assert handled == ["p1-retrying", "p0-next"]
