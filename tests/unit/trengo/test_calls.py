"""Counted calls and pagination: every call counts, and a listing that never ends is cut off."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from processor.trengo.calls import MAX_PAGES, CountedCalls, every_page
from processor.trengo.client import JsonObject
from processor.trengo.errors import PermanentError
from tests.unit.trengo.fake_trengo import make_client
from tests.unit.trengo.simulated_time import run_simulated

Handler = Callable[[httpx.Request], httpx.Response]


def pages_until(last: int | None) -> Handler:
    """Pages of one label each; ``links.next`` until page ``last`` (None: never ends)."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        more = last is None or page < last
        links = {"next": f"/labels?page={page + 1}" if more else None}
        return httpx.Response(200, json={"data": [{"id": page}], "links": links})

    return handler


def list_labels(handler: Handler) -> tuple[list[JsonObject], int]:
    """Every label ``handler`` lists, and the calls it took."""

    async def main() -> tuple[list[JsonObject], int]:
        async with make_client(handler) as client:
            calls = CountedCalls(client)
            return await every_page(calls.list_labels, "list_labels"), calls.count

    return run_simulated(main())


def test_every_page_follows_links_next_counting_each_call() -> None:
    assert list_labels(pages_until(3)) == ([{"id": 1}, {"id": 2}, {"id": 3}], 3)


def test_a_listing_that_never_ends_is_cut_off() -> None:
    with pytest.raises(PermanentError, match=f"^list_labels: more than {MAX_PAGES} pages"):
        list_labels(pages_until(None))


def test_an_empty_page_ends_the_listing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [], "links": {"next": "/labels?page=2"}})

    assert list_labels(handler) == ([], 1)
