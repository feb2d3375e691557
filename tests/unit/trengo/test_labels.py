"""The label directory: every page read once, names ignoring case, a refresh at most once a
minute for a name it does not know."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from processor.trengo.endpoints import TrengoId
from processor.trengo.errors import PermanentError
from processor.trengo.labels import LabelDirectory
from tests.unit.trengo.fake_trengo import FakeTrengo, make_client
from tests.unit.trengo.simulated_time import run_simulated

T = TypeVar("T")
Lookup = Callable[[LabelDirectory], Awaitable[T]]


def run(trengo: FakeTrengo, lookup: Lookup[T]) -> T:
    async def main() -> T:
        async with make_client(trengo.handle) as client:
            directory = LabelDirectory(client, clock=asyncio.get_running_loop().time)
            return await lookup(directory)

    return run_simulated(main())


def test_reads_every_page_once_and_matches_names_ignoring_case() -> None:
    trengo = FakeTrengo(page_size=2)
    ids = {name: trengo.add_label(name) for name in ["lead", "Order", "VIP", "support", "x"]}

    async def lookup(directory: LabelDirectory) -> list[object]:
        first = await directory.ids(["vip", "ORDER", "Vip"])
        second = await directory.ids(["x", "lead"])
        return [first, second]

    assert run(trengo, lookup) == [(ids["VIP"], ids["Order"]), (ids["x"], ids["lead"])]
    assert trengo.routes() == ["GET /labels"] * 3
    assert [call.params for call in trengo.calls] == [{"page": str(n)} for n in (1, 2, 3)]


def test_no_names_need_no_listing() -> None:
    trengo = FakeTrengo()

    async def lookup(directory: LabelDirectory) -> tuple[TrengoId, ...]:
        return await directory.ids([])

    assert run(trengo, lookup) == ()
    assert trengo.calls == []


def test_of_two_labels_with_one_name_the_first_listed_wins() -> None:
    trengo = FakeTrengo()
    first = trengo.add_label("VIP")
    trengo.add_label("vip")

    async def lookup(directory: LabelDirectory) -> tuple[TrengoId, ...]:
        return await directory.ids(["vip"])

    assert run(trengo, lookup) == (first,)


def test_an_unknown_name_refreshes_at_most_once_a_minute() -> None:
    trengo = FakeTrengo()
    trengo.add_label("vip")

    async def lookup(directory: LabelDirectory) -> list[str]:
        outcomes = []
        for wait, name in [(0, "vip"), (10, "new"), (0, "new"), (61, "new")]:
            await asyncio.sleep(wait)
            if wait == 10:
                trengo.add_label("New")  # added in Trengo after the first listing
            try:
                await directory.ids([name])
                outcomes.append(f"{name}: found after {len(trengo.calls)} listings")
            except PermanentError as missing:
                outcomes.append(f"{missing.reason} after {len(trengo.calls)} listings")
        return outcomes

    assert run(trengo, lookup) == [
        "vip: found after 1 listings",
        "label 'new' not found in Trengo after 1 listings",  # the list is 10 s old: no refresh
        "label 'new' not found in Trengo after 1 listings",
        "new: found after 2 listings",
    ]


def test_a_name_still_missing_after_the_refresh_is_permanent() -> None:
    trengo = FakeTrengo()
    trengo.add_label("vip")

    async def lookup(directory: LabelDirectory) -> None:
        await directory.ids(["vip"])
        await asyncio.sleep(61)
        with pytest.raises(PermanentError, match="'Gold' not found"):
            await directory.ids(["vip", "Gold"])
        with pytest.raises(PermanentError):
            await directory.ids(["Gold"])

    run(trengo, lookup)
    assert trengo.routes() == ["GET /labels"] * 2


def test_concurrent_first_lookups_share_one_listing() -> None:
    trengo = FakeTrengo()
    vip = trengo.add_label("vip")

    async def slow() -> None:
        await asyncio.sleep(0.05)

    trengo.on_request = slow

    async def lookup(directory: LabelDirectory) -> set[tuple[TrengoId, ...]]:
        found = await asyncio.gather(*(directory.ids(["vip"]) for _ in range(5)))
        return set(found)

    assert run(trengo, lookup) == {(vip,)}
    assert trengo.routes() == ["GET /labels"]


def test_a_failed_listing_is_read_again_next_time() -> None:
    trengo = FakeTrengo(failing={"GET /labels": 503})
    vip = trengo.add_label("vip")

    async def lookup(directory: LabelDirectory) -> tuple[TrengoId, ...]:
        with pytest.raises(Exception, match="HTTP 503"):
            await directory.ids(["vip"])
        del trengo.failing["GET /labels"]
        return await directory.ids(["vip"])

    assert run(trengo, lookup) == (vip,)
    assert len(trengo.calls) == 2
